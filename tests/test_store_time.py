"""Store-local time: a visit at 23:30 UTC lands in the store's local hour and
day in the report, the segments and the views; stored times stay UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from audience.core.visit import Visit
from audience.reports.report import build_report
from audience.reports.segments import Period, segments
from audience.storage.published import Window
from audience.storage.report_settings import (
    read_store_time_zones,
    write_report_settings,
    write_store_time_zones,
)
from audience.storage.schema import VisitRow, report_gender_daily, report_visits_hourly
from audience.storage.sink import VisitSink
from audience.storage.timezones import offset_periods, zone

WINTER = datetime(2026, 1, 15, 23, 30, tzinfo=UTC)
SUMMER = datetime(2026, 7, 15, 23, 30, tzinfo=UTC)

# zone, the UTC instant, its local hour (wall clock), its local day
CASES = [
    ("UTC", WINTER, datetime(2026, 1, 15, 23), date(2026, 1, 15)),
    ("Europe/Berlin", WINTER, datetime(2026, 1, 16, 0), date(2026, 1, 16)),  # UTC+1
    ("Europe/Berlin", SUMMER, datetime(2026, 7, 16, 1), date(2026, 7, 16)),  # UTC+2 (DST)
    ("America/New_York", WINTER, datetime(2026, 1, 15, 18), date(2026, 1, 15)),  # UTC-5
    ("Asia/Kolkata", WINTER, datetime(2026, 1, 16, 5), date(2026, 1, 16)),  # UTC+5:30
]
IDS = [f"{z}-{t:%b}" for z, t, _, _ in CASES]


def _write(engine: Engine, make_visit: Callable[..., Visit], at: datetime) -> None:
    with VisitSink(engine) as sink:
        for i in range(5):
            sink.add(make_visit(started_at=at + timedelta(seconds=i)))


@pytest.mark.parametrize(("tz", "at", "hour", "day"), CASES, ids=IDS)
@pytest.mark.parametrize("output", ["report", "segments", "views"])
def test_a_late_visit_lands_in_the_local_hour_and_day(
        engine: Engine, make_visit: Callable[..., Visit], output: str, tz: str, at: datetime,
        hour: datetime, day: date) -> None:
    _write(engine, make_visit, at)
    if output == "report":
        report = build_report(engine, "store-1", Window(tz), k=5, now=at + timedelta(days=2))
        assert report.footfall.counts == {hour: 5}
        assert build_report(engine, "store-1", Window(tz, day), k=5).total == 5
        assert build_report(engine, "store-1", Window(tz, day + timedelta(days=1)),
                            k=5).total == 0
    elif output == "segments":
        rows = segments(engine, "store-1", ("gender",), Period.day, Window(tz), k=5)
        assert [(r.period, r.count) for r in rows] == [(day, 5)]
    else:
        write_report_settings(engine, 5, False)
        write_store_time_zones(engine, {"store-1": tz})
        assert read_store_time_zones(engine) == {"store-1": tz}
        with engine.connect() as conn:
            assert conn.execute(select(report_visits_hourly.c.hour, report_visits_hourly.c.day,
                                       report_visits_hourly.c.visits)).all() == [(hour, day, 5)]
            assert conn.execute(select(report_gender_daily.c.day)).scalars().all() == [day]
    with engine.connect() as conn:  # stored times stay UTC
        assert conn.execute(select(VisitRow.started_at).limit(1)).scalar_one() == at


def test_offset_periods_follow_daylight_saving() -> None:
    lo, hi = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    assert offset_periods(zone("Europe/Berlin"), lo, hi) == [
        (lo, datetime(2026, 3, 29, 1, tzinfo=UTC), 60),
        (datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC), 120),
        (datetime(2026, 10, 25, 1, tzinfo=UTC), hi, 60)]
    assert offset_periods(zone("UTC"), lo, hi) == [(lo, hi, 0)]


def test_cli_reads_the_store_zone_from_config(engine: Engine, db_url: str,
                                              make_visit: Callable[..., Visit],
                                              tmp_path: Path) -> None:
    from audience.cli import app

    _write(engine, make_visit, WINTER)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("report:\n  timezones:\n    store-1: Europe/Berlin\n")
    res = CliRunner().invoke(app, ["report", "--store", "store-1", "--db", db_url, "--config",
                                   str(cfg), "--since", "2026-01-16", "--out",
                                   str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    assert "│ 2026-01-16 00:00 │      5 │" in res.stdout and "Europe/Berlin" in res.stdout
    res = CliRunner().invoke(app, ["segments", "--by", "gender", "--store", "store-1", "--db",
                                   db_url, "--config", str(cfg)])
    assert res.exit_code == 0 and "2026-01-16" in res.stdout and "2026-01-15" not in res.stdout


def test_cli_uses_the_zone_the_views_use(engine: Engine, db_url: str,
                                        make_visit: Callable[..., Visit], tmp_path: Path) -> None:
    """Without report.timezones, the report buckets as the views do (the zone provision wrote);
    a config that disagrees wins, and says so."""
    from audience.cli import app

    _write(engine, make_visit, WINTER)
    write_store_time_zones(engine, {"store-1": "Europe/Berlin"})
    out = str(tmp_path / "r.html")
    res = CliRunner().invoke(app, ["report", "--store", "store-1", "--db", db_url, "--out", out])
    assert res.exit_code == 0 and "│ 2026-01-16 00:00 │      5 │" in res.stdout, res.output
    cfg = tmp_path / "c.yaml"
    cfg.write_text("report:\n  timezones:\n    store-1: America/New_York\n")
    res = CliRunner().invoke(app, ["report", "--store", "store-1", "--db", db_url, "--out", out,
                                   "--config", str(cfg)])
    assert res.exit_code == 0 and "│ 2026-01-15 18:00 │      5 │" in res.stdout
    assert "the report_* views in Europe/Berlin" in res.stderr
