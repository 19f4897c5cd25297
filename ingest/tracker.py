"""Greedy IoU face tracker with ByteTrack-style low-confidence continuation: turns per-frame
faces into visits with their best crops."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from audience.core.face import Face, Track
from audience.ingest.config import TrackerConfig

# Velocity smoothing: faces move steadily between sampled frames; a little memory keeps
# two faces that cross each other on their own course.
_VELOCITY_MEMORY = 0.5
# Fallback (centre distance) matches only between boxes of similar size.
_MAX_SIZE_RATIO = 2.0


class Detection(Protocol):
    """What the tracker follows: a face, or a body (which never carries a crop)."""

    box: np.ndarray
    score: float
    timestamp: float
    track_id: str | None
    crop: np.ndarray | None
    frontal: bool  #: facing the camera in this frame (attention)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x1y1x2y2 boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = float(w * h)
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0], np.float64)


def _side(box: np.ndarray) -> float:
    return float(max(1.0, min(box[2] - box[0], box[3] - box[1])))


@dataclass(slots=True, eq=False)  # identity, not field equality (numpy fields)
class _LiveTrack:
    track_id: str
    started_at: float
    last_seen: float
    box: np.ndarray
    n_detections: int = 1
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # px per second
    faces: list[Face] = field(default_factory=list)
    frontal: dict[float, float] = field(default_factory=dict)  #: time -> seconds it stands for

    def predicted(self, t: float) -> np.ndarray:
        shift = self.velocity * (t - self.last_seen)
        return self.box + np.array([shift[0], shift[1], shift[0], shift[1]], np.float32)


class Tracker:
    """Associates faces frame to frame; emits a :class:`Track` when a face leaves.

    Association is greedy: highest IoU (against the constant-velocity prediction) first,
    then, for faces that moved more than their box between sampled frames, the nearest
    centre within ``max_centre_shift`` box sizes. No Hungarian solver: a handful of faces
    per frame makes greedy as good and dependency-free.

    ByteTrack's idea, in two passes: confident faces (score >= ``start_score``) are matched
    first; the tracks they leave unmatched may then take a low-confidence face (a small,
    blurred or turning face the detector is unsure of), which keeps the track alive and
    counts as a hit. A low-confidence face never starts a track, so a flickering poster or
    reflection needs a confident detection and ``min_hits`` hits to become a visitor.
    """

    def __init__(self, config: TrackerConfig, camera_id: str, store_id: str,
                 on_expire: Callable[[Track], None] | None = None,
                 start_score: float = 0.0) -> None:
        self.config = config
        self.start_score = start_score
        self.camera_id = camera_id
        self.store_id = store_id
        self.on_expire = on_expire
        self._live: list[_LiveTrack] = []
        self.discarded = 0  #: tracks dropped for having fewer than min_hits detections

    @property
    def active(self) -> int:
        """Tracks currently open."""
        return len(self._live)

    @property
    def live_ids(self) -> set[str]:
        """Ids of the tracks currently open."""
        return {lt.track_id for lt in self._live}

    def update(self, faces: Sequence[Detection], timestamp: float,
               frame_s: float = 0.0) -> list[Track]:
        """Add one frame's faces (or bodies); return the tracks that ended (unseen >
        max_unseen_s). ``frame_s``: the seconds this frame stands for (attention time)."""
        ended = [lt for lt in self._live if timestamp - lt.last_seen > self.config.max_unseen_s]
        if ended:
            self._live = [lt for lt in self._live if lt not in ended]
        for live, face in self._associate(faces, timestamp):
            self._extend(live, face, timestamp, frame_s)
        return self._emit(ended)

    def flush(self) -> list[Track]:
        """End of stream: end every open track."""
        ended, self._live = self._live, []
        return self._emit(ended)

    def _associate(self, faces: Sequence[Detection], t: float
                   ) -> list[tuple[_LiveTrack, Detection]]:
        preds = [lt.predicted(t) for lt in self._live]
        strong = [i for i, f in enumerate(faces) if f.score >= self.start_score]
        weak = [i for i, f in enumerate(faces) if f.score < self.start_score]
        free_tracks = set(range(len(self._live)))
        pairs, free_strong = self._match(preds, faces, free_tracks, set(strong))
        weak_pairs, _ = self._match(preds, faces, free_tracks, set(weak))  # never start one
        out = [(self._live[ti], faces[fi]) for ti, fi in pairs + weak_pairs]
        for fi in sorted(free_strong):  # unmatched confident faces start new tracks
            face = faces[fi]
            live = _LiveTrack(uuid.uuid4().hex, t, t, face.box.astype(np.float32), 0)
            self._live.append(live)
            out.append((live, face))
        return out

    def _match(self, preds: list[np.ndarray], faces: Sequence[Detection], free_tracks: set[int],
               free_faces: set[int]) -> tuple[list[tuple[int, int]], set[int]]:
        """Greedy pairs (track, face) among the free ones, which it updates in place; returns
        the pairs and the faces left free."""
        pairs: list[tuple[int, int]] = []
        by_iou = sorted(((iou(preds[ti], faces[fi].box), ti, fi) for ti in free_tracks
                         for fi in free_faces), reverse=True)
        for score, ti, fi in by_iou:
            if score < self.config.iou_threshold or score <= 0:
                break
            if ti in free_tracks and fi in free_faces:
                pairs.append((ti, fi))
                free_tracks.discard(ti)
                free_faces.discard(fi)

        by_dist = []
        for ti in free_tracks:
            for fi in free_faces:
                a, b = preds[ti], faces[fi].box
                sa, sb = _side(a), _side(b)
                if max(sa, sb) / min(sa, sb) > _MAX_SIZE_RATIO:
                    continue
                d = float(np.linalg.norm(_centre(a) - _centre(b))) / ((sa + sb) / 2.0)
                if d <= self.config.max_centre_shift:
                    by_dist.append((d, ti, fi))
        for _, ti, fi in sorted(by_dist):
            if ti in free_tracks and fi in free_faces:
                pairs.append((ti, fi))
                free_tracks.discard(ti)
                free_faces.discard(fi)
        return pairs, free_faces

    def _extend(self, live: _LiveTrack, face: Detection, t: float, frame_s: float) -> None:
        if live.n_detections and t > live.last_seen:
            step = (_centre(face.box) - _centre(live.box)) / (t - live.last_seen)
            live.velocity = step if live.n_detections == 1 else (
                _VELOCITY_MEMORY * live.velocity + (1 - _VELOCITY_MEMORY) * step)
        live.box = face.box.astype(np.float32)
        live.last_seen = t
        live.n_detections += 1
        face.track_id = live.track_id
        if not face.timestamp:
            face.timestamp = t
        if face.frontal:
            live.frontal[t] = frame_s
        # gated out (blurred, turned) or a body: position only, never a crop
        if face.crop is None or not isinstance(face, Face):
            return
        live.faces.append(face)
        live.faces.sort(key=lambda f: f.quality, reverse=True)
        del live.faces[self.config.best_k:]

    def _emit(self, ended: list[_LiveTrack]) -> list[Track]:
        out = []
        for lt in ended:
            if lt.n_detections < self.config.min_hits:
                self.discarded += 1
                continue
            track = Track(self.camera_id, self.store_id, lt.track_id, lt.started_at,
                          lt.last_seen, lt.n_detections, list(lt.faces), frontal=lt.frontal)
            if self.on_expire is not None:
                self.on_expire(track)
            out.append(track)
        return out
