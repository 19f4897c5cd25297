"""The camera stage: frames in, finished tracks (visits with their best aligned crops) out."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from audience.core.face import Face, Track
from audience.core.preprocess import INPUT_SIZE, align_face
from audience.ingest.config import CameraConfig
from audience.ingest.detect import FaceDetector, YuNetDetector, work_scale
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

    def line(self) -> str:
        return (f"{self.frames} frames, {self.faces} faces (dropped: {self.masked} masked, "
                f"{self.small} small; no crop: {self.unsure} unsure, {self.undersized} "
                f"undersized, {self.blurry} blurry, {self.turned} turned), {self.tracks} "
                f"tracks ({self.uncropped} without a crop)")


class CameraStage:
    """Detect, filter, align, score and track the faces of one camera.

    Count first, label what you can. Faces inside an exclusion mask, or under the detector's
    reliable floor, are dropped outright. Every other face feeds the tracker, so each
    confirmed track is a visitor; only faces that pass the attribute gates (confidence, size,
    sharpness, pose) become crops. A track may therefore end with fewer than K crops, or
    none: it is still a visit, stored with unknown attributes and ``n_crops = 0``.
    """

    def __init__(self, config: CameraConfig, detector: FaceDetector | None = None,
                 on_expire: Callable[[Track], None] | None = None) -> None:
        self.config = config
        d = config.detector
        # YuNet reports down to the low threshold; the tracker decides what each face may do.
        self.detector: FaceDetector = detector or YuNetDetector(
            d.low_score_threshold, d.nms_threshold, d.work_width, max_upscale=d.max_upscale)
        self._masks = mask_contours(config.exclusion_masks)
        self.tracker = Tracker(config.tracker, config.id, config.store, on_expire,
                               start_score=d.score_threshold)
        self.counters = StageCounters()
        #: Opt-in frame observer (annotated video, live view): (stage, frame, time, faces).
        self.on_frame: Callable[[CameraStage, np.ndarray, float, list[Face]], None] | None = None

    def process(self, frame: np.ndarray, timestamp: float) -> list[Track]:
        """One frame: returns the tracks that ended at ``timestamp``."""
        self.counters.frames += 1
        d, q = self.config.detector, self.config.quality
        # The floor is in working pixels: a frame detected at 2x has a floor half as wide.
        floor = d.min_face_px / work_scale(frame.shape[1], d.work_width, d.max_upscale)
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
        ended = self._count(self.tracker.update(kept, timestamp))
        if self.on_frame is not None:  # after update: faces carry their track ids
            self.on_frame(self, frame, timestamp, kept)
        return ended

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
        self.counters.tracks += len(tracks)
        self.counters.uncropped += sum(not t.faces for t in tracks)
        return tracks
