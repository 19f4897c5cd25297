"""One visitor = one person: faces attached to bodies, and the face and body tracks of one
person merged into one track.

Each frame, a face belongs to the body whose head region holds its centre (the head's
keypoints where MoveNet sees them, else the top of the body box); a face lying on a body
below its head (a patterned shirt, a printed T-shirt) is no face at all and is dropped.
Faces and bodies are tracked separately (each by :class:`Tracker`), and a face track joins
the body track(s) it was attached to most: a person is a body track with its face tracks, a
face track without a body (a seated person behind a desk, a close-up), or a body track
without a face (a back turned to the camera). Nobody is counted twice because both
detectors saw them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from audience.core.face import Face, Track
from audience.ingest.bodies import HEAD, LEFT_SHOULDER, RIGHT_SHOULDER, Body
from audience.ingest.config import AttentionConfig, BodiesConfig, TrackerConfig
from audience.ingest.tracker import Tracker

# The head is this share of the body box's height from its top where the keypoints do not
# show it (a standing adult's head is about an eighth of the body; a box cut at the frame's
# bottom or a seated person makes it a larger share, so a generous quarter).
_HEAD_SHARE = 0.25


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0], np.float64)


def head_region(body: Body, min_score: float) -> np.ndarray:
    """Where the body's head is, x1 y1 x2 y2: around its confident head keypoints (nose,
    eyes, ears), padded by the head's own size; else the top quarter of the body box."""
    kp = body.keypoints
    seen = [i for i in HEAD if kp[i, 2] >= min_score]
    x1, y1, x2, y2 = (float(v) for v in body.box)
    if len(seen) >= 2:
        pts = kp[seen, :2].astype(np.float64)
        lo, hi = pts.min(0), pts.max(0)
        spread = float(max(hi - lo))
        shoulders = kp[[LEFT_SHOULDER, RIGHT_SHOULDER]]
        if min(shoulders[:, 2]) >= min_score:  # a head is about half the shoulders' width
            spread = max(spread, 0.5 * float(abs(shoulders[0, 0] - shoulders[1, 0])))
        pad = max(spread, 0.05 * (y2 - y1))
        return np.array([lo[0] - pad, lo[1] - pad, hi[0] + pad, hi[1] + pad], np.float32)
    return np.array([x1, y1, x2, y1 + _HEAD_SHARE * (y2 - y1)], np.float32)


def _inside(point: np.ndarray, box: np.ndarray) -> bool:
    return bool(box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3])


def associate(faces: list[Face], bodies: list[Body], min_score: float
              ) -> list[tuple[int, int]]:
    """(face index, body index) pairs, one face per body at most: each face goes to the body
    whose head region holds its centre, the nearest head first where two regions overlap."""
    heads = [head_region(b, min_score) for b in bodies]
    candidates = []
    for fi, face in enumerate(faces):
        c = _centre(face.box)
        for bi, head in enumerate(heads):
            if _inside(c, head):
                size = max(1.0, float(min(head[2] - head[0], head[3] - head[1])))
                candidates.append((float(np.linalg.norm(c - _centre(head))) / size, fi, bi))
    pairs, used_f, used_b = [], set(), set()
    for _, fi, bi in sorted(candidates):
        if fi not in used_f and bi not in used_b:
            pairs.append((fi, bi))
            used_f.add(fi)
            used_b.add(bi)
    return pairs


def on_torso(face: Face, bodies: list[Body], heads: list[np.ndarray]) -> bool:
    """Whether a face's centre lies inside a body box below that body's head region, and in
    no body's head region: a pattern on clothing, not a face (a real face is a head, never on
    someone's chest; a person standing in front of another keeps their face)."""
    c = _centre(face.box)
    if any(_inside(c, head) for head in heads):
        return False
    return any(_inside(c, b.box) and c[1] > head[3] for b, head in zip(bodies, heads,
                                                                        strict=True))


class PeopleTracker:
    """Tracks faces and bodies, and emits one :class:`Track` per person when all of that
    person's face and body tracks have ended.

    A face track joins the body track it was attached to in the most frames, if attached in
    at least ``min(min_hits, its hits)`` frames, and also any other body track it was so
    attached to that never overlapped the first in time (the body tracker lost the person
    and found them again: the same face says it is one person). A person counts if its body
    tracks reach ``bodies.min_hits`` detections or its face tracks ``tracker.min_hits``.
    """

    def __init__(self, tracker: TrackerConfig, bodies: BodiesConfig, attention: AttentionConfig,
                 camera_id: str, store_id: str, on_expire: Callable[[Track], None] | None = None,
                 start_score: float = 0.0) -> None:
        self.tracker_config, self.bodies_config, self.attention = tracker, bodies, attention
        self.camera_id, self.store_id, self.on_expire = camera_id, store_id, on_expire
        every = tracker.model_copy(update={"min_hits": 1})  # the hit rules apply per person
        self.faces = Tracker(every, camera_id, store_id, start_score=start_score)
        self.bodies = Tracker(every, camera_id, store_id)
        self.discarded = 0  #: people dropped for too few detections
        self._attached: dict[tuple[str, str], int] = {}  # (face track, body track) -> frames
        self._ended_faces: dict[str, Track] = {}
        self._ended_bodies: dict[str, Track] = {}
        self._links: dict[str, list[str]] = {}  # ended face track -> the body tracks it joined

    @property
    def active(self) -> int:
        """People currently in view (open body tracks, and open face tracks on no body)."""
        on_body = {f for (f, b) in self._attached if b in self.bodies.live_ids}
        return self.bodies.active + len(self.faces.live_ids - on_body)

    def update(self, faces: list[Face], bodies: list[Body], pairs: list[tuple[int, int]],
               timestamp: float, frame_s: float) -> list[Track]:
        """One frame: its faces, bodies and their pairs (:func:`associate`); returns the
        people whose tracks all ended."""
        ended_f = self.faces.update(faces, timestamp, frame_s)
        ended_b = self.bodies.update(bodies, timestamp, frame_s)
        for fi, bi in pairs:
            f, b = faces[fi].track_id, bodies[bi].track_id
            if f is not None and b is not None:
                self._attached[(f, b)] = self._attached.get((f, b), 0) + 1
        return self._end(ended_f, ended_b)

    def flush(self) -> list[Track]:
        return self._end(self.faces.flush(), self.bodies.flush())

    def _end(self, faces: list[Track], bodies: list[Track]) -> list[Track]:
        for t in bodies:
            self._ended_bodies[t.track_id] = t
        for t in faces:
            self._ended_faces[t.track_id] = t
            self._links[t.track_id] = self._join(t)
        return self._emit_complete()

    def _join(self, face: Track) -> list[str]:
        need = min(self.tracker_config.min_hits, face.n_detections)
        counts = sorted(((n, b) for (f, b), n in self._attached.items()
                         if f == face.track_id and n >= need), reverse=True)
        chosen: list[str] = []
        for _, b in counts:
            if all(not self._overlap(b, c) for c in chosen):
                chosen.append(b)
        return chosen

    def _overlap(self, a: str, b: str) -> bool:
        ta, tb = self._ended_bodies.get(a), self._ended_bodies.get(b)
        if ta is None or tb is None:  # one is still open: they coexist now
            return True
        return ta.started_at <= tb.ended_at and tb.started_at <= ta.ended_at

    def _emit_complete(self) -> list[Track]:
        live_faces = self.faces.live_ids
        out: list[Track] = []
        done: set[str] = set()
        for fid, bids in list(self._links.items()):
            if fid in done or bids:
                continue
            done.add(fid)  # a face on no body: a person of its own
            out += self._person([self._ended_faces.pop(fid)], [])
            del self._links[fid]
            self._attached = {k: n for k, n in self._attached.items() if k[0] != fid}
        for bid in list(self._ended_bodies):
            if bid in done:
                continue
            group_b, group_f = self._group(bid)
            done |= group_b | group_f
            waiting = any(b not in self._ended_bodies for b in group_b) or any(
                f in live_faces or f not in self._links
                for (f, b) in self._attached if b in group_b)
            if waiting:
                continue
            out += self._person([self._ended_faces.pop(f) for f in sorted(group_f)],
                                [self._ended_bodies.pop(b) for b in sorted(group_b)])
            for f in group_f:
                del self._links[f]
            self._attached = {k: n for k, n in self._attached.items()
                              if k[0] not in group_f and k[1] not in group_b}
        return out

    def _group(self, bid: str) -> tuple[set[str], set[str]]:
        """The body tracks and face tracks joined to ``bid``, through any chain of links."""
        bodies, faces, todo = {bid}, set(), [bid]
        while todo:
            b = todo.pop()
            for f, bs in self._links.items():
                if b in bs and f not in faces:
                    faces.add(f)
                    for other in bs:
                        if other not in bodies:
                            bodies.add(other)
                            todo.append(other)
        return bodies, faces

    def _person(self, faces: list[Track], bodies: list[Track]) -> list[Track]:
        face_hits = sum(t.n_detections for t in faces)
        body_hits = sum(t.n_detections for t in bodies)
        if face_hits < self.tracker_config.min_hits and body_hits < self.bodies_config.min_hits:
            self.discarded += 1
            return []
        parts = faces + bodies
        frontal: dict[float, float] = {}
        for t in parts:
            frontal.update(t.frontal)
        crops = sorted((f for t in faces for f in t.faces), key=lambda f: f.quality,
                       reverse=True)[: self.tracker_config.best_k]
        track_id = uuid.uuid4().hex  # a new random id: never a sub-track's
        for f in crops:
            f.track_id = track_id
        first = parts[0]
        person = replace(
            first, track_id=track_id, started_at=min(t.started_at for t in parts),
            ended_at=max(t.ended_at for t in parts),
            n_detections=max(face_hits, body_hits), faces=crops, face_hits=face_hits,
            frontal=frontal)
        finish(person, self.attention)
        if self.on_expire is not None:
            self.on_expire(person)
        return [person]


def finish(track: Track, cfg: AttentionConfig) -> Track:
    """Set a finished track's attention time and whether that makes it a watcher. Each
    frontal frame stands for the time since the previous analysed frame; the total is capped
    at the dwell (first to last sighting), so attention is never longer than the visit."""
    total = sum(track.frontal.values())
    track.attention_s = round(min(total, track.dwell_s), 2)
    track.watcher = track.attention_s >= cfg.min_attention_s
    return track
