"""One visit: what the pipeline stores per track. No image data, ever."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

AGE_BRACKETS = ("0-12", "13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")


def age_bracket(age: float) -> str:
    for bracket, upper in zip(AGE_BRACKETS, (13, 18, 25, 35, 45, 55, 65), strict=False):
        if age < upper:
            return bracket
    return AGE_BRACKETS[-1]


@dataclass(slots=True)
class Visit:
    store_id: str
    camera_id: str
    track_id: str
    started_at: datetime  #: timezone-aware UTC
    ended_at: datetime
    dwell_s: float
    n_crops: int
    model_version: str
    age: float | None = None
    age_bracket: str | None = None
    gender: str | None = None  #: "male" / "female"
    gender_score: float | None = None  #: confidence of the label, 0.5..1
    emotion: str | None = None
    emotion_scores: dict[str, float] | None = None
    ethnicity: str | None = None  #: only where a deployment enables it
    ethnicity_scores: dict[str, float] | None = field(default=None)
