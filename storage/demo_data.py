"""Synthetic visits for the demo store: a seeded, plausible week of footfall.

The bundled clip has 3 visitors, so at the default k=5 a report of it alone suppresses every
breakdown. ``audience demo-data`` (run by ``make demo``) adds a week of generated visits to the
same store so the report has something to show. They never pass for camera data:

- every generated visit has ``model_version = "synthetic"`` (``SYNTHETIC``): the column that
  says what produced a visit's labels says that no model and no camera did;
- they sit on their own camera id, ``synthetic`` by default, so dashboards show it too;
- ``audience report`` says on the page that the period contains synthetic visits, without a
  count (a count would let a reader derive the real one), and only when a published
  camera-day holds them (``storage.published.holds_synthetic``): a note about a day that is
  left out would say that something was there. ``has_synthetic`` asks the raw rows.

The generator is deterministic: each day's visits come from ``random.Random(f"{seed}:{store}:
{camera}:{date}")``, track ids included, so running it again writes the same rows (the sink
upserts on store, camera and track) and a run a day later only adds the new day.

Model, per day (UTC), opening hours 09:00-20:00: visits per hour ~ Poisson-like
``gauss(base * weekday_factor * hour_factor, 2)`` with a lunch (12-13 h) and an after-work
(17-18 h) peak and a busier Saturday; dwell from a long-tailed mix (a few seconds walking past
to 10+ minutes); age ~ N(38, 15) clipped to 5..90; gender 55 % female; emotion mostly
neutral/happy. The figures are invented for a demo, not estimates of any real store.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Connection, Engine, select

from audience.core.visit import Visit, age_bracket
from audience.storage.db import connected
from audience.storage.schema import VisitRow
from audience.storage.sink import VisitSink

#: ``model_version`` of every generated visit: marks it synthetic in the database.
SYNTHETIC = "synthetic"
DEFAULT_SEED = 7
OPEN_HOURS = range(9, 20)  # 09:00 to 19:59 UTC
EMOTIONS = ("neutral", "happy", "sad", "surprise", "angry", "fear", "disgust")
EMOTION_WEIGHTS = (50, 25, 8, 7, 5, 3, 2)
DWELL_S = (4, 8, 15, 25, 45, 90, 200, 700)
WEEKDAY_FACTOR = (0.8, 0.8, 0.9, 1.0, 1.2, 1.5, 0.6)  # Monday .. Sunday


@dataclass(frozen=True, slots=True)
class DemoData:
    store_id: str
    camera_id: str
    first_day: date
    last_day: date
    visits: int


def synthetic_visits(store_id: str, camera_id: str = "synthetic", days: int = 7,
                     end: date | None = None, seed: int = DEFAULT_SEED,
                     per_hour: float = 8.0) -> Iterator[Visit]:
    """Visits for the ``days`` whole UTC days before ``end`` (default: today, UTC)."""
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    end = end or datetime.now(UTC).date()
    for back in range(days, 0, -1):
        day = end - timedelta(days=back)
        rng = random.Random(f"{seed}:{store_id}:{camera_id}:{day.isoformat()}")
        midnight = datetime.combine(day, time(), UTC)
        for hour in OPEN_HOURS:
            peak = 1.6 if hour in (12, 13, 17, 18) else 1.0
            mean = per_hour * WEEKDAY_FACTOR[day.weekday()] * peak
            for _ in range(max(0, round(rng.gauss(mean, 2)))):
                yield _visit(rng, store_id, camera_id,
                             midnight + timedelta(hours=hour, seconds=rng.uniform(0, 3599)))


def _visit(rng: random.Random, store_id: str, camera_id: str, start: datetime) -> Visit:
    dwell = round(rng.choice(DWELL_S) * rng.uniform(0.8, 1.2), 2)
    age = round(min(90.0, max(5.0, rng.gauss(38, 15))), 1)
    emotion = rng.choices(EMOTIONS, weights=EMOTION_WEIGHTS)[0]
    gender = "female" if rng.random() < 0.55 else "male"
    track_id = uuid.UUID(int=rng.getrandbits(128), version=4).hex
    # Attention from its own generator (seeded by the visit), so the other fields stay as
    # they were: about a third of visitors look, for a tenth to a half of their dwell; the
    # others glance for under a second at most.
    look = random.Random(track_id)
    attention = round(dwell * look.uniform(0.1, 0.5) if look.random() < 0.35
                      else min(dwell, look.uniform(0.0, 0.8)), 2)
    return Visit(
        store_id=store_id, camera_id=camera_id, track_id=track_id,
        attention_s=attention, watcher=attention >= 1.0,
        started_at=start, ended_at=start + timedelta(seconds=dwell), dwell_s=dwell, n_crops=0,
        model_version=SYNTHETIC, age=age, age_bracket=age_bracket(age), gender=gender,
        gender_score=round(rng.uniform(0.6, 0.99), 4), emotion=emotion,
        emotion_scores={emotion: round(rng.uniform(0.4, 0.9), 4)})


def fill_demo_store(engine: Engine, store_id: str, camera_id: str = "synthetic",
                    days: int = 7, end: date | None = None,
                    seed: int = DEFAULT_SEED) -> DemoData:
    """Write the synthetic visits (idempotent: same seed and day, same rows)."""
    end = end or datetime.now(UTC).date()
    with VisitSink(engine, batch_size=1000) as sink:
        for visit in synthetic_visits(store_id, camera_id, days, end, seed):
            sink.add(visit)
    return DemoData(store_id, camera_id, end - timedelta(days=days), end - timedelta(days=1),
                    sink.written)


def has_synthetic(bind: Engine | Connection, store_id: str, since: datetime | None = None,
                  until: datetime | None = None) -> bool:
    """Whether any visit of the store in [since, until) is synthetic (a yes/no, no count)."""
    stmt = select(VisitRow.id).where(VisitRow.store_id == store_id,
                                     VisitRow.model_version == SYNTHETIC)
    if since is not None:
        stmt = stmt.where(VisitRow.started_at >= since)
    if until is not None:
        stmt = stmt.where(VisitRow.started_at < until)
    with connected(bind, "checking for synthetic visits in") as conn:
        return conn.execute(stmt.limit(1)).first() is not None
