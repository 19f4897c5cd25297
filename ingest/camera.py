"""The camera stage: frames in, finished tracks (visits with their best aligned crops) out."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from audience.core.face import Face, Track
from audience.core.preprocess import INPUT_SIZE, align_face
from audience.ingest.attention import frontal
from audience.ingest.bodies import Body, BodyDetector, MoveNetDetector
from audience.ingest.config import CameraConfig
from audience.ingest.detect import FaceDetector, YuNetDetector, work_scale
from audience.ingest.people import PeopleTracker, associate, finish, head_region, on_torso
from audience.ingest.quality import in_masks, mask_contours, quality_score, sharpness, yaw
from audience.ingest.tracker import Tracker

log = logging.getLogger(__name__)


@dataclass(slots=True)
class StageCounters:
    """Plain counts for monitoring; never anything about the image content."""

    frames: int = 0
    faces: int = 0  #: detected
    masked: int = 0  #: dropped: centre inside an exclusion mask
    small: int = 0  #: dropped: below the detector's floor (detector.min_face_px)
    unsure: int = 0  #: tracked, no crop: score below quality.min_score
    undersized: int = 0  #: tracked, no crop: shorter box side below quality.min_face_px
    blurry: int = 0  #: tracked, crop rejected: sharpness below min_sharpness
    turned: int = 0  #: tracked, crop rejected: yaw above max_yaw
    tracks: int = 0  #: emitted
    uncropped: int = 0  #: emitted without any crop: counted, attributes unknown
    bodies: int = 0  #: people (bodies) detected, exclusion masks applied
    on_body: int = 0  #: faces dropped: on a body below its head (a pattern on clothing)
    watchers: int = 0  #: emitted tracks that looked at the camera for min_attention_s

    def line(self) -> str:
        return (f"{self.frames} frames, {self.faces} faces (dropped: {self.masked} masked, "
                f"{self.small} small, {self.on_body} on a body; no crop: {self.unsure} "
                f"unsure, {self.undersized} undersized, {self.blurry} blurry, {self.turned} "
                f"turned), {self.bodies} bodies, {self.tracks} tracks ({self.uncropped} "
                f"without a crop, {self.watchers} watchers)")


class CameraStage:
    """Detect, filter, align, score and track the faces of one camera.

    Count first, label what you can. Faces inside an exclusion mask, or under the detector's
    reliable floor, are dropped outright. Every other face feeds the tracker, so each
    confirmed track is a visitor; only faces that pass the attribute gates (confidence, size,
    sharpness, pose) become crops. A track may therefore end with fewer than K crops, or
    none: it is still a visit, stored with unknown attributes and ``n_crops = 0``.

    With bodies on (the default), a visitor is a person: a body and face track merged
    (:mod:`audience.ingest.people`), so people who never show a face count too. Every track
    carries its attention time: the frames its person faced the camera
    (:mod:`audience.ingest.attention`).
    """

    def __init__(self, config: CameraConfig, detector: FaceDetector | None = None,
                 on_expire: Callable[[Track], None] | None = None,
                 body_detector: BodyDetector | None = None) -> None:
        self.config = config
        d, b = config.detector, config.bodies
        # YuNet reports down to the low threshold; the tracker decides what each face may do.
        self.detector: FaceDetector = detector or YuNetDetector(
            d.low_score_threshold, d.nms_threshold, d.work_width, max_upscale=d.max_upscale)
        self.body_detector: BodyDetector | None = None
        if b.enabled:
            self.body_detector = body_detector or MoveNetDetector(b.score_threshold, b.long_side)
        self._masks = mask_contours(config.exclusion_masks)
        self.on_expire = on_expire
        self.tracker: Tracker | PeopleTracker = (
            PeopleTracker(config.tracker, b, config.attention, config.id, config.store,
                          start_score=d.score_threshold) if b.enabled else
            Tracker(config.tracker, config.id, config.store, start_score=d.score_threshold))
        self.counters = StageCounters()
        self.bodies: list[Body] = []  #: the last frame's people (for the frame observers)
        self._last_frame: float | None = None
        #: Opt-in frame observer (annotated video, live view): (stage, frame, time, faces).
        self.on_frame: Callable[[CameraStage, np.ndarray, float, list[Face]], None] | None = None

    def process(self, frame: np.ndarray, timestamp: float) -> list[Track]:
        """One frame: returns the tracks that ended at ``timestamp``."""
        self.counters.frames += 1
        d, q, a = self.config.detector, self.config.quality, self.config.attention
        # The floor is in working pixels: a frame detected at 2x has a floor half as wide.
        floor = d.min_face_px / work_scale(frame.shape[1], d.work_width, d.max_upscale)
        bodies = self.bodies = self._bodies(frame, timestamp)
        heads = [head_region(b, a.keypoint_score) for b in bodies]
        kept: list[Face] = []
        for face in self.detector.detect(frame):
            self.counters.faces += 1
            face.timestamp = timestamp
            face.crop = None  # only faces that pass every attribute gate carry a crop
            if in_masks(face, self._masks):
                self.counters.masked += 1
                continue
            if face.size < floor:
                self.counters.small += 1
                continue
            if bodies and on_torso(face, bodies, heads):
                self.counters.on_body += 1
                continue
            kept.append(face)
            if face.score < q.min_score:
                self.counters.unsure += 1
                continue
            if face.size < q.min_face_px:
                self.counters.undersized += 1
                continue
            # Colour: a colour model uses it, a gray one takes its luma (prepare_face).
            crop = align_face(frame, face.landmarks, INPUT_SIZE, channels=3)
            sharp, turn = sharpness(crop), yaw(face.landmarks)
            if sharp < q.min_sharpness:
                self.counters.blurry += 1
            elif turn > q.max_yaw:
                self.counters.turned += 1
            else:
                face.crop = crop
                face.quality = quality_score(face, sharp, turn)
        ended = self._count(self._track(kept, bodies, timestamp))
        if self.on_frame is not None:  # after update: faces carry their track ids
            self.on_frame(self, frame, timestamp, kept)
        return ended

    def _bodies(self, frame: np.ndarray, timestamp: float) -> list[Body]:
        if self.body_detector is None:
            return []
        found = []
        for body in self.body_detector.detect(frame):
            body.timestamp = timestamp
            if not in_masks(body, self._masks):
                found.append(body)
        self.counters.bodies += len(found)
        return found

    def _track(self, faces: list[Face], bodies: list[Body], timestamp: float) -> list[Track]:
        """Attention flags for this frame's people, then the tracker; the tracks that ended."""
        a = self.config.attention
        # The seconds this frame stands for: the time since the previous one, at most two
        # sampling periods (a gap in the source is no attention time).
        period = 1.0 / self.config.fps
        frame_s = period if self._last_frame is None else min(
            max(0.0, timestamp - self._last_frame), 2 * period)
        self._last_frame = timestamp
        if isinstance(self.tracker, Tracker):
            for face in faces:
                face.frontal = frontal(face, None, a)
            return self.tracker.update(faces, timestamp, frame_s)
        pairs = associate(faces, bodies, a.keypoint_score)
        paired_f, paired_b = {fi for fi, _ in pairs}, {bi for _, bi in pairs}
        for fi, bi in pairs:
            faces[fi].frontal = bodies[bi].frontal = frontal(faces[fi], bodies[bi], a)
        for fi, face in enumerate(faces):
            if fi not in paired_f:
                face.frontal = frontal(face, None, a)
        for bi, body in enumerate(bodies):
            if bi not in paired_b:
                body.frontal = frontal(None, body, a)
        return self.tracker.update(faces, bodies, pairs, timestamp, frame_s)

    def flush(self) -> list[Track]:
        """End every open track (end of stream)."""
        return self._count(self.tracker.flush())

    def run(self, source: Iterable[tuple[float, np.ndarray]]) -> Iterator[Track]:
        """Process a whole source, yielding tracks as they end; flushes at the end."""
        try:
            for timestamp, frame in source:
                yield from self.process(frame, timestamp)
            yield from self.flush()
        finally:
            log.info("camera %s: %s", self.config.id, self.counters.line())

    def _count(self, tracks: list[Track]) -> list[Track]:
        for track in tracks:
            if isinstance(self.tracker, Tracker):  # face tracks: finished here
                track.face_hits = track.n_detections
                finish(track, self.config.attention)
            if self.on_expire is not None:
                self.on_expire(track)
        self.counters.tracks += len(tracks)
        self.counters.uncropped += sum(not t.faces for t in tracks)
        self.counters.watchers += sum(bool(t.watcher) for t in tracks)
        return tracks
