"""`audience report` (Python, storage.published) and the report_* views (SQL, migration 0004)
publish the same cells: over any whole-day window, every figure of the report is the sum of
the views' rows for those days, across cameras, in the store's time zone."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, Table, select

from audience.core.visit import Visit
from audience.reports.report import build_report
from audience.storage.published import Window
from audience.storage.report_settings import write_report_settings, write_store_time_zones
from audience.storage.schema import (
    report_age_daily,
    report_attention_daily,
    report_dwell_daily,
    report_emotion_daily,
    report_gender_daily,
    report_visits_daily,
    report_visits_hourly,
)
from audience.storage.sink import VisitSink

DAY = datetime(2026, 3, 2, tzinfo=UTC)
FIRST, END = date(2026, 3, 2), date(2026, 3, 5)  # three local days


def _seeded(make_visit: Callable[..., Visit], seed: int) -> list[Visit]:
    rng = random.Random(seed)
    look = random.Random(1000 + seed)  # apart, so the other labels stay as they were
    out = []
    for _ in range(rng.randint(60, 300)):
        start = DAY + timedelta(days=rng.randint(-1, 3), hours=rng.choice((0, 9, 10, 17, 23)),
                                minutes=rng.randint(0, 59))
        out.append(make_visit(
            store_id="s1", camera_id=rng.choice(("c1", "c1", "c2")), started_at=start,
            dwell_s=rng.choice((3.0, 20.0, 45.0, 100.0, 700.0)),
            age=rng.choice((None, 8.0, 22.0, 30.0, 30.0, 40.0, 70.0)),
            gender=rng.choice((None, "female", "male", "male")),
            emotion=rng.choice((None, "happy", "happy", "neutral", "sad")),
            watcher=look.choice((None, True, True, False, False, False))))
    return out


def _view(engine: Engine, view: Table, label: str) -> Counter[Any]:
    c = view.c
    stmt = select(c[label], c.visits).where(c.store_id == "s1", c.day >= FIRST, c.day < END)
    sums: Counter[Any] = Counter()
    with engine.connect() as conn:
        for key, n in conn.execute(stmt).all():
            sums[key] += n
    return sums


@pytest.mark.parametrize("time_zone", ["UTC", "America/New_York"])
@pytest.mark.parametrize("seed", range(6))
def test_report_is_the_views_summed(engine: Engine, make_visit: Callable[..., Visit],
                                    seed: int, time_zone: str) -> None:
    with VisitSink(engine) as sink:
        for v in _seeded(make_visit, seed):
            sink.add(v)
    write_report_settings(engine, 5, False)
    write_store_time_zones(engine, {"s1": time_zone})
    report = build_report(engine, "s1", Window(time_zone, FIRST, END), k=5)
    total = sum(_view(engine, report_visits_daily, "store_id").values())
    assert report.total == total
    for published, view, label in [
            (report.gender, report_gender_daily, "gender"),
            (report.age, report_age_daily, "age_bracket"),
            (report.emotion, report_emotion_daily, "emotion"),
            (report.dwell, report_dwell_daily, "dwell_band"),
            (report.footfall, report_visits_hourly, "hour"),
            (report.attention.looked if report.attention else None, report_attention_daily,
             "looked")]:
        assert published is not None, label
        shown = _view(engine, view, label)
        assert published.counts == dict(shown), label
        assert published.suppressed == total - sum(shown.values()), label


def test_a_tie_with_the_unknown_label_is_broken_the_same_way(
        engine: Engine, make_visit: Callable[..., Visit]) -> None:
    # female 3 is hidden; male 5 and unknown 5 tie as the smallest shown group.
    with VisitSink(engine) as sink:
        for i, gender in enumerate(["female"] * 3 + ["male"] * 5 + [None] * 5):
            sink.add(make_visit(store_id="s1", camera_id="c1", gender=gender,
                                started_at=DAY + timedelta(hours=9, minutes=i)))
    report = build_report(engine, "s1", Window("UTC", FIRST, END), k=5)
    assert report.gender.counts == dict(_view(engine, report_gender_daily, "gender")) == {
        "unknown": 5}


@pytest.mark.parametrize("seed", range(4))
def test_one_label_segments_are_the_views_summed(engine: Engine, make_visit: Callable[..., Visit],
                                                 seed: int) -> None:
    from audience.reports.segments import Period, segments

    with VisitSink(engine) as sink:
        for v in _seeded(make_visit, seed):
            sink.add(v)
    write_report_settings(engine, 5, False)
    rows = segments(engine, "s1", ("emotion",), Period.day, Window("UTC", FIRST, END), k=5)
    got: Counter[Any] = Counter()
    for row in rows:
        got[(row.period, row.labels[0] if row.labels else "(suppressed)")] += row.count
    c = report_emotion_daily.c
    want: Counter[Any] = Counter()
    with engine.connect() as conn:
        for day, emotion, n in conn.execute(select(c.day, c.emotion, c.visits).where(
                c.store_id == "s1", c.day >= FIRST, c.day < END)):
            want[(day, emotion)] += n
        d = report_visits_daily.c
        for day, n in conn.execute(select(d.day, d.visits).where(
                d.store_id == "s1", d.day >= FIRST, d.day < END)):
            want[(day, "(suppressed)")] += n
    for (day, label), n in list(want.items()):
        if label != "(suppressed)":
            want[(day, "(suppressed)")] -= n
    assert got == +want  # + drops zero counts: a day with nothing hidden has no such row


@pytest.mark.parametrize("by", [("age_bracket", "gender"), ("emotion", "gender"),
                                ("gender", "age_bracket", "emotion"), ("looked", "gender"),
                                ("age_bracket", "looked", "emotion")])
@pytest.mark.parametrize("seed", range(3))
def test_label_combinations_lean_on_what_the_views_show(
        engine: Engine, make_visit: Callable[..., Visit], seed: int,
        by: tuple[str, ...]) -> None:
    """Segments of two and three labels (chosen with every linked table of the camera-day)
    and the views (one label, in SQL) are one publication: each day's segments add up to the
    views' day total, a shown combination's labels are each shown by the views that day, and
    no label's combinations add up to more than the view shows for it."""
    from audience.reports.segments import Period, segments

    with VisitSink(engine) as sink:
        for v in _seeded(make_visit, seed) + _seeded(make_visit, seed + 50):
            v.camera_id = "c1"  # one camera: segments' days are the views' camera-days
            sink.add(v)
    write_report_settings(engine, 5, False)
    rows = segments(engine, "s1", by, Period.day, Window("UTC", FIRST, END), k=5)
    views = {label: view for label, view in [("age_bracket", report_age_daily),
                                             ("gender", report_gender_daily),
                                             ("emotion", report_emotion_daily),
                                             ("looked", report_attention_daily)]}
    shown: dict[tuple[str, date], dict[Any, int]] = {}
    with engine.connect() as conn:
        for label, view in views.items():
            c = view.c
            for day, key, n in conn.execute(select(c.day, c[label], c.visits).where(
                    c.store_id == "s1", c.day >= FIRST, c.day < END)):
                shown.setdefault((label, day), {})[key] = n
        d = report_visits_daily.c
        totals = dict(conn.execute(select(d.day, d.visits).where(
            d.store_id == "s1", d.day >= FIRST, d.day < END)).all())
    per_day: Counter[date] = Counter()
    per_label: Counter[tuple[str, date, str]] = Counter()
    for row in rows:
        per_day[row.period] += row.count
        for label, key in zip(by, row.labels, strict=False):
            assert key in shown.get((label, row.period), {}), (row, label)
            per_label[(label, row.period, key)] += row.count
    assert dict(per_day) == totals
    if len(by) == 2:  # not vacuous (three labels of ~40 visits a day: all hidden, rightly)
        assert any(row.labels for row in rows)
    for (label, day, key), n in per_label.items():
        assert n <= shown[(label, day)][key]
