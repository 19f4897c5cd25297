"""The one dataclass that carries a face from detection to storage."""

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
    crop: np.ndarray | None = field(default=None, repr=False)

    @property
    def size(self) -> float:
        """Shorter side of the box in pixels."""
        return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    def __repr__(self) -> str:  # never let crop pixels reach a log line
        return (f"Face(track_id={self.track_id!r}, box={np.round(self.box, 1).tolist()}, "
                f"score={self.score:.2f}, quality={self.quality:.2f})")
