"""Issue 14's differencing attack, against every output: it must fail.

One visitor at 09:30 (female, 65+, sad, 417.5 s) and ten at 10:00-10:59 (male, 25-34, happy,
27 s). Before 0004, `report --since 09:00` and `--since 10:00` differed by exactly that
visitor: her gender, age bracket, emotion and dwell (11 x 62.5 - 10 x 27.0) followed by
subtraction, and `segments` listed her cell by label. Now windows are whole store-local days
and every figure is a sum of published cells, so both windows publish the same thing, and her
labels appear nowhere. With a busy afternoon the day is published, and still identical.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, Table, select
from typer.testing import CliRunner

from audience.core.visit import Visit
from audience.storage.report_settings import write_report_settings
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

DAY = datetime(2026, 11, 29, tzinfo=UTC)
WINDOWS = ("2026-11-29T09:00", "2026-11-29T10:00")
HER = ("65+", "sad", "3-10 min", "417")  # what the attack recovered about the lone visitor
# She is also the morning's one watcher (12.3 s facing the camera): no output may show a
# watcher that morning, nor her attention time.
HER_ATTENTION = ("12.3",)


def _visits(make_visit: Callable[..., Visit], busy: bool) -> list[Visit]:
    out = [make_visit(store_id="ks", started_at=DAY.replace(hour=9, minute=30), gender="female",
                      age=70.0, emotion="sad", dwell_s=417.5, attention_s=12.3, watcher=True)]
    out += [make_visit(store_id="ks", started_at=DAY.replace(hour=10, minute=5 * i),
                       gender="male", age=30.0, emotion="happy", dwell_s=27.0, attention_s=0.4,
                       watcher=False)
            for i in range(10)]
    if busy:  # a busy afternoon: the day is published, she is still not recoverable
        out += [make_visit(store_id="ks", started_at=DAY + timedelta(hours=15, minutes=i),
                           gender="female", age=30.0, emotion="happy", dwell_s=20.0,
                           attention_s=2.0, watcher=True)
                for i in range(20)]
    return out


def _run(*args: str) -> Any:
    from audience.cli import app

    return CliRunner().invoke(app, list(args))


def _report(db_url: str, since: str, tmp: Path) -> tuple[str, ...]:
    out = tmp / "r.html"
    res = _run("report", "--store", "ks", "--db", db_url, "--since", since, "--out", str(out))
    assert res.exit_code == 0, res.output
    page = re.sub(r"Generated [^<]*", "", out.read_text())
    return res.stdout, page


def _segments(db_url: str, since: str, tmp: Path) -> tuple[str, ...]:
    outs: list[str] = []
    for by in ("age_bracket,gender,emotion", "looked,gender"):
        out = tmp / "s.csv"
        res = _run("segments", "--by", by, "--store", "ks", "--db", db_url,
                   "--since", since, "--csv", str(out))
        assert res.exit_code == 0, res.output
        with out.open(newline="") as f:
            outs += [res.stdout, repr(list(csv.reader(f)))]
    return tuple(outs)


def _sums(engine: Engine, view: Table, label: str, since: datetime) -> dict[Any, int]:
    """What a dashboard shows for "from `since`": hourly rows from that hour, daily rows from
    that day, summed per label across cameras."""
    c = view.c
    start = since.replace(tzinfo=None)
    cond = c.hour >= start if "hour" in c else c.day >= start.date()
    sums: Counter[Any] = Counter()
    with engine.connect() as conn:
        for key, n in conn.execute(select(c[label], c.visits).where(c.store_id == "ks", cond)):
            sums[key] += n
    return dict(sums)


def _views(engine: Engine, since: str) -> tuple[str, ...]:
    t = datetime.fromisoformat(since)
    return tuple(repr(_sums(engine, view, label, t)) for view, label in [
        (report_visits_hourly, "hour"), (report_visits_daily, "day"),
        (report_dwell_daily, "dwell_band"), (report_age_daily, "age_bracket"),
        (report_gender_daily, "gender"), (report_emotion_daily, "emotion"),
        (report_attention_daily, "looked")]) + (_attention_means(engine, t),)


def _attention_means(engine: Engine, since: datetime) -> str:
    c = report_attention_daily.c
    with engine.connect() as conn:
        rows = conn.execute(select(c.day, c.looked, c.avg_attention_s).where(
            c.store_id == "ks", c.day >= since.date()).order_by(c.day, c.looked)).all()
    return repr([(str(d), label, round(a, 3)) for d, label, a in rows])


OUTPUTS = {"report": _report, "segments": _segments, "views": None}


@pytest.mark.parametrize("busy", [False, True], ids=["as filed", "busy afternoon"])
@pytest.mark.parametrize("output", list(OUTPUTS))
def test_two_overlapping_windows_reveal_nobody(engine: Engine, db_url: str,
                                               make_visit: Callable[..., Visit], tmp_path: Path,
                                               output: str, busy: bool) -> None:
    with VisitSink(engine) as sink:
        for v in _visits(make_visit, busy):
            sink.add(v)
    write_report_settings(engine, 5, False)
    if output == "views":
        early, late = (_views(engine, w) for w in WINDOWS)
    else:
        early, late = (OUTPUTS[output](db_url, w, tmp_path) for w in WINDOWS)  # type: ignore[misc]
    assert early == late  # nothing to subtract
    published = "\n".join(early)
    for label in HER + HER_ATTENTION:
        assert label not in published, label
    if busy:  # not vacuous: the day's 31 visits are published (as a total, or summed)
        assert re.search(r"\b31\b", published), published
