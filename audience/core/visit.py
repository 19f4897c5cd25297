"""What the pipeline learns about a face and stores per track. No image data, ever.

``FaceAttributes`` is the one attribute type: the analyzer returns it per crop, and a ``Visit``
is a ``FaceAttributes`` aggregated over a track, plus where and when.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

AGE_BRACKETS = ("0-12", "13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")


def age_bracket(age: float) -> str:
    for bracket, upper in zip(AGE_BRACKETS, (13, 18, 25, 35, 45, 55, 65), strict=False):
        if age < upper:
            return bracket
    return AGE_BRACKETS[-1]


@dataclass(slots=True, kw_only=True)
class FaceAttributes:
    emotion: str | None = None
    emotion_scores: dict[str, float] | None = None
    age: float | None = None
    age_bracket: str | None = None
    gender: str | None = None  #: "male" / "female"
    gender_score: float | None = None  #: confidence of the label, 0.5..1
    ethnicity: str | None = None  #: only where a deployment enables it
    ethnicity_scores: dict[str, float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def p_female(self) -> float | None:
        """The gender head's probability of "female" (``gender_score`` is the label's)."""
        if self.gender_score is None:
            return None
        return self.gender_score if self.gender == "female" else 1 - self.gender_score


@dataclass(slots=True, kw_only=True)
class Visit(FaceAttributes):
    """One visitor: a track's attributes (all None when no crop was usable) and its times."""

    store_id: str
    camera_id: str
    track_id: str
    started_at: datetime  #: timezone-aware UTC
    ended_at: datetime
    dwell_s: float  #: seconds in view, first to last sighting
    n_crops: int
    model_version: str
    #: Seconds facing the camera (yaw and pitch within the camera's limits); None: not
    #: measured (a camera before attention was measured).
    attention_s: float | None = None
    watcher: bool | None = None  #: attention_s reached the camera's min_attention_s
