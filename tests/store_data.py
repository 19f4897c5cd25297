"""Seeded, plausible visits for two stores over two days: enough for k=5 to show something.

Used by the dashboard test next to the visits of a real pipeline run. Counts vary per hour so
some cells fall under k and are suppressed, as in a real small store.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from audience.core.visit import Visit, age_bracket

DAY0 = datetime(2026, 11, 16, tzinfo=UTC)  # a Monday
EMOTIONS = ("neutral", "happy", "sad", "surprise", "angry", "fear", "disgust")
CAMERAS = {"north": ("entrance", "checkout"), "south": ("entrance",)}


def visits(seed: int = 7, days: int = 2) -> Iterator[Visit]:
    rng = random.Random(seed)
    for store, cameras in CAMERAS.items():
        scale = 1.0 if store == "north" else 0.5  # south is the small store
        for day in range(days):
            for hour in range(9, 19):
                for camera in cameras:
                    peak = 12 if hour in (12, 13, 17) else 6
                    n = max(0, int(rng.gauss(peak * scale, 2)))
                    for _ in range(n):
                        start = DAY0 + timedelta(days=day, hours=hour,
                                                 seconds=rng.uniform(0, 3500))
                        dwell = rng.choice((4, 8, 15, 25, 45, 90, 200, 700)) * rng.uniform(0.8, 1.2)
                        age = min(90.0, max(3.0, rng.gauss(36, 14)))
                        emotion = rng.choices(EMOTIONS, weights=(50, 25, 8, 7, 5, 3, 2))[0]
                        yield Visit(
                            store_id=store, camera_id=camera, track_id=uuid.uuid4().hex,
                            started_at=start, ended_at=start + timedelta(seconds=dwell),
                            dwell_s=dwell, n_crops=5, model_version="synthetic",
                            age=age, age_bracket=age_bracket(age),
                            gender=rng.choice(("female", "male")), gender_score=0.9,
                            emotion=emotion, emotion_scores={emotion: 0.7})
