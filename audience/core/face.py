"""The types that carry a face from detection to the queue: one Face, one finished Track."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(slots=True)
class Face:
    """One detected face in one frame.

    ``crop`` is the aligned 48x48 face (uint8 BGR) and lives only in memory (and in
    Kafka with short retention); it is never written to a database, a log or a report.
    """

    box: np.ndarray  #: x1, y1, x2, y2 in frame pixels, float32
    landmarks: np.ndarray  #: 5x2 YuNet landmarks in frame pixels
    score: float  #: detector confidence 0..1
    timestamp: float = 0.0  #: seconds since the epoch of the frame it came from
    track_id: str | None = None
    quality: float = 0.0  #: crop-ranking score (size, sharpness, frontalness)
    frontal: bool = False  #: facing the camera (yaw and pitch within the attention limits)
    crop: np.ndarray | None = field(default=None, repr=False)

    @property
    def size(self) -> float:
        """Shorter side of the box in pixels."""
        return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    def __repr__(self) -> str:  # never let crop pixels reach a log line
        return (f"Face(track_id={self.track_id!r}, box={np.round(self.box, 1).tolist()}, "
                f"score={self.score:.2f}, quality={self.quality:.2f})")


@dataclass(slots=True)
class Track:
    """A finished track. ``faces`` are the best K, best first, each with its aligned ``crop``."""

    camera_id: str
    store_id: str
    track_id: str  #: random, never linked across cameras or visits
    started_at: float  #: epoch seconds of the first detection
    ended_at: float  #: epoch seconds of the last detection
    n_detections: int
    faces: list[Face] = field(default_factory=list)
    #: Seconds the person faced the camera; None where unknown (a message from an older camera).
    attention_s: float | None = None
    watcher: bool | None = None  #: attention_s reached the camera's min_attention_s
    face_hits: int | None = None  #: frames in which a face was seen (None: unknown)
    #: Frame time -> seconds it stands for, for each frame the person faced the camera: the
    #: camera stage's working state (merging a face's and a body's track); never sent.
    frontal: dict[float, float] = field(default_factory=dict, repr=False)

    @property
    def dwell_s(self) -> float:
        return max(0.0, self.ended_at - self.started_at)
