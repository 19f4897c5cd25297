"""What the camera stage emits when a track ends: one visitor, with its best crops."""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.face import Face


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

    @property
    def dwell_s(self) -> float:
        return max(0.0, self.ended_at - self.started_at)
