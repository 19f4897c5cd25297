"""`audience report` (Python suppression over the visits table) and the report_* views (SQL
suppression) publish the same numbers where their grains coincide: one camera, one day."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from audience.core.visit import AGE_BRACKETS, Visit
from audience.storage import query
from audience.storage.schema import report_age_daily, report_gender_daily, report_visits_hourly
from audience.storage.sink import VisitSink

DAY = datetime(2026, 3, 2, tzinfo=UTC)


def _seeded(make_visit: Callable[..., Visit], seed: int) -> list[Visit]:
    rng = random.Random(seed)
    out = []
    for _ in range(rng.randint(8, 60)):
        start = DAY + timedelta(hours=rng.choice((9, 10, 11, 12, 17)), minutes=rng.randint(0, 59))
        out.append(make_visit(
            store_id="s1", camera_id="c1", started_at=start,
            age=rng.choice((None, 8.0, 16.0, 22.0, 30.0, 40.0, 70.0)),
            gender=rng.choice((None, "female", "male", "male"))))
    return out


def _view(engine: Engine, view: Any, label: str) -> dict[Any, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(view.c[label], view.c.visits)
                            .where(view.c.store_id == "s1")).all()
    return {key: n for key, n in rows}


def _shown(groups: list[Any], attr: str) -> dict[Any, int]:
    return {(getattr(g, attr) if getattr(g, attr) is not None else "unknown"): g.count
            for g in groups if not g.suppressed}


@pytest.mark.parametrize("seed", range(12))
def test_report_and_views_agree(engine: Engine, make_visit: Callable[..., Visit],
                                seed: int) -> None:
    with VisitSink(engine) as sink:
        for v in _seeded(make_visit, seed):
            sink.add(v)
    until = DAY + timedelta(days=1)
    assert _shown(query.gender_split(engine, "s1", DAY, until, k=5), "key") == _view(
        engine, report_gender_daily, "gender")
    ages = _shown(query.age_brackets(engine, "s1", DAY, until, k=5), "key")
    assert ages == _view(engine, report_age_daily, "age_bracket")
    assert set(ages) <= {*AGE_BRACKETS, "unknown"}
    hours = {h.hour: h.count for h in query.footfall_by_hour(engine, "s1", DAY, until, k=5)
             if not h.suppressed}
    assert hours == _view(engine, report_visits_hourly, "hour")


def test_a_tie_with_the_unknown_label_is_broken_the_same_way(
        engine: Engine, make_visit: Callable[..., Visit]) -> None:
    # female 3 is hidden; male 5 and unknown 5 tie as the smallest shown group.
    with VisitSink(engine) as sink:
        for i, gender in enumerate(["female"] * 3 + ["male"] * 5 + [None] * 5):
            sink.add(make_visit(store_id="s1", camera_id="c1", gender=gender,
                                started_at=DAY + timedelta(hours=9, minutes=i)))
    shown = _shown(query.gender_split(engine, "s1", DAY, DAY + timedelta(days=1), k=5), "key")
    assert shown == _view(engine, report_gender_daily, "gender") == {"unknown": 5}
