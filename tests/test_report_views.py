"""Migrations 0003 and 0004: k-suppressed report_* views in store-local time, report_settings and
store_utc_offsets, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, Table, delete, inspect, select

from audience.core.visit import Visit
from audience.storage.db import (
    StorageError,
    alembic_config,
    current_revision,
    head_revision,
    migrate,
)
from audience.storage.report_settings import (
    read_report_settings,
    read_store_time_zones,
    write_report_settings,
)
from audience.storage.schema import (
    VIEWS,
    ReportSettingsRow,
    report_age_daily,
    report_dwell_daily,
    report_emotion_daily,
    report_ethnicity_daily,
    report_gender_daily,
    report_visits_daily,
    report_visits_hourly,
)
from audience.storage.sink import VisitSink

MakeVisit = Callable[..., Visit]
T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
D1, D2 = date(2024, 5, 6), date(2024, 5, 7)
REPORT_VIEWS = sorted(t.name for t in VIEWS.tables.values() if t.name.startswith("report_"))


def U(hour: int, day: int = 0) -> datetime:  # noqa: N802 - reads like a label in the tables
    """A UTC instant on the test days."""
    return T0.replace(hour=hour) + timedelta(days=day)


def H(hour: int, day: int = 0) -> datetime:  # noqa: N802 - reads like a label in the tables
    """The start of a store-local hour, as the views give it: wall clock, no time zone."""
    return T0.replace(hour=hour, tzinfo=None) + timedelta(days=day)


def many(n: int, **over: Any) -> list[dict[str, Any]]:
    """n visits with the same overrides, one minute apart from the given (or default) start."""
    start = over.pop("started_at", T0)
    return [dict(over, started_at=start + timedelta(minutes=i)) for i in range(n)]


def _write(engine: Engine, make_visit: MakeVisit, specs: list[dict[str, Any]]) -> None:
    with VisitSink(engine) as sink:
        for spec in specs:
            sink.add(make_visit(**spec))


def _rows(engine: Engine, view: Table, *cols: str) -> list[tuple[Any, ...]]:
    c = view.c
    stmt = select(*(c[n] for n in cols)).where(c.store_id == "store-1")
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(stmt).all())


# (view, columns read, visits, k, ethnicity_enabled, expected rows sorted)
CASES: dict[str, tuple[Table, tuple[str, ...], list[dict[str, Any]], int, bool, list[Any]]] = {
    "below k absent, exactly one hidden hides the smallest shown": (
        report_gender_daily, ("day", "gender", "visits"),
        many(8, gender="female") + many(6, gender="male") + many(3, gender=None),
        5, False, [(D1, "female", 8)]),
    "two hidden holding k together: no complementary suppression": (
        report_emotion_daily, ("day", "emotion", "visits"),
        many(8, emotion="happy") + many(6, emotion="sad") + many(3, emotion="angry")
        + many(2, emotion=None),
        5, False, [(D1, "happy", 8), (D1, "sad", 6)]),
    "two hidden holding fewer than k: the smallest shown is hidden too": (
        report_emotion_daily, ("emotion", "visits"),
        many(8, emotion="happy") + many(6, emotion="sad") + many(1, emotion="angry")
        + many(1, emotion=None),
        5, False, [("happy", 8)]),
    "complementary tie broken by label": (
        report_emotion_daily, ("emotion", "visits"),
        many(6, emotion="sad") + many(6, emotion="happy") + many(2, emotion="angry"),
        5, False, [("sad", 6)]),
    "emotion partitions are days": (
        report_emotion_daily, ("day", "emotion", "visits"),
        # Day 2's 3 sad hide its 5 happy; day 1 is its own partition.
        many(6, emotion="happy") + many(5, emotion="sad", started_at=U(10))
        + many(3, emotion="sad", started_at=U(9, 1)) + many(5, emotion="happy",
                                                           started_at=U(10, 1)),
        5, False, [(D1, "happy", 6), (D1, "sad", 5)]),
    "total below k: every cell absent": (
        report_gender_daily, ("gender", "visits"),
        many(2, gender="female") + many(2, gender="male"), 5, False, []),
    "total below k: daily total absent": (
        report_visits_daily, ("day", "visits"), many(4), 5, False, []),
    "daily is primary only": (
        report_visits_daily, ("camera_id", "day", "visits", "avg_dwell_s"),
        many(7, dwell_s=10.0) + many(3, dwell_s=20.0, camera_id="cam-2")
        + many(5, dwell_s=50.0, started_at=U(9, 1)) + many(1, started_at=U(10, 1)),
        5, False, [("cam-1", D1, 7, 10.0), ("cam-1", D2, 6, 280 / 6)]),
    "hourly: one hidden hour hides the smallest shown hour of the day": (
        report_visits_hourly, ("hour", "day", "visits", "avg_dwell_s"),
        many(6, dwell_s=10.0) + many(5, started_at=U(10)) + many(2, started_at=U(11))
        + many(5, started_at=U(9, 1)) + many(5, started_at=U(10, 1)),
        5, False, [(H(9), D1, 6, 10.0), (H(9, 1), D2, 5, 30.0), (H(10, 1), D2, 5, 30.0)]),
    "hourly: two hidden hours, no complementary": (
        report_visits_hourly, ("hour", "visits"),
        many(6) + many(2, started_at=U(10)) + many(3, started_at=U(11)) + many(5, started_at=U(12)),
        5, False, [(H(9), 6), (H(12), 5)]),
    "hourly partitions are per camera": (
        report_visits_hourly, ("camera_id", "hour", "visits"),
        many(6) + many(5, started_at=U(10))
        + many(6, camera_id="cam-2") + many(2, camera_id="cam-2", started_at=U(10)),
        5, False, [("cam-1", H(9), 6), ("cam-1", H(10), 5)]),
    "NULL labels read 'unknown'": (
        report_age_daily, ("age_bracket", "visits"),
        many(5, age=None) + many(5, age=30), 5, False, [("25-34", 5), ("unknown", 5)]),
    "k read from settings": (
        report_gender_daily, ("gender", "visits"),
        many(8, gender="female") + many(3, gender="male") + many(3, gender=None),
        3, False, [("female", 8), ("male", 3), ("unknown", 3)]),
    "dwell bands: lower bound inclusive": (
        report_dwell_daily, ("band_order", "dwell_band", "visits"),
        [{"dwell_s": d} for d in (0, 9.99, 10, 29.99, 30, 59.99, 60, 179.99, 180, 599.99,
                                  600, 5000)],
        2, False, [(1, "0-10s", 2), (2, "10-30s", 2), (3, "30-60s", 2), (4, "1-3 min", 2),
                   (5, "3-10 min", 2), (6, "10+ min", 2)]),
    "dwell: one hidden band hides the smallest shown band": (
        report_dwell_daily, ("dwell_band", "visits"),
        many(6, dwell_s=5) + many(5, dwell_s=20) + many(5, dwell_s=45) + many(1, dwell_s=700),
        5, False, [("0-10s", 6), ("30-60s", 5)]),
    "hour and day are UTC for a store without a time zone": (
        report_visits_hourly, ("hour", "day", "visits"),
        # 23:30 at UTC-2 is 01:30 UTC the next day.
        many(2, started_at=datetime.fromisoformat("2024-05-06T23:30:00-02:00")),
        2, False, [(datetime(2024, 5, 7, 1), D2, 2)]),
    "ethnicity hidden unless enabled": (
        report_ethnicity_daily, ("ethnicity", "visits"), many(10, ethnicity="white"),
        5, False, []),
    "ethnicity shown when enabled": (
        report_ethnicity_daily, ("ethnicity", "visits"),
        many(10, ethnicity="white") + many(6, ethnicity=None), 5, True,
        [("unknown", 6), ("white", 10)]),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_view_suppression(engine: Engine, make_visit: MakeVisit, case: str) -> None:
    view, cols, specs, k, ethnicity, expected = CASES[case]
    _write(engine, make_visit, specs)
    write_report_settings(engine, k, ethnicity)
    got = _rows(engine, view, *cols)
    assert got == [tuple(pytest.approx(v) if isinstance(v, float) else v for v in row)
                   for row in expected]


def test_views_read_settings_on_every_query(engine: Engine, make_visit: MakeVisit) -> None:
    _write(engine, make_visit, many(8, gender="female") + many(3, gender="male"))
    assert read_report_settings(engine) == (5, False)  # seeded by the migration
    assert _rows(engine, report_gender_daily, "gender", "visits") == []  # 1 hidden of 2
    write_report_settings(engine, 3, True)
    assert read_report_settings(engine) == (3, True)
    assert _rows(engine, report_gender_daily, "gender", "visits") == [("female", 8), ("male", 3)]
    with engine.connect() as conn:  # the caller's transaction: nothing until it commits
        write_report_settings(conn, 9, False)
        assert read_report_settings(conn) == (9, False)
        conn.rollback()
    assert read_report_settings(engine) == (3, True)


@pytest.mark.parametrize("k", [1, 0, -3, True, 2.5])
def test_write_settings_validates(engine: Engine, k: Any) -> None:
    with pytest.raises(StorageError, match=r"k must be an integer >= 2"):
        write_report_settings(engine, k, False)
    with pytest.raises(StorageError, match=r"pass True or False"):
        write_report_settings(engine, 5, "yes")  # type: ignore[arg-type]
    assert read_report_settings(engine) == (5, False)


def test_missing_settings_row_fails_closed(engine: Engine, make_visit: MakeVisit) -> None:
    _write(engine, make_visit, many(10, ethnicity="white"))
    assert _rows(engine, report_visits_daily, "visits") == [(10,)]
    with engine.begin() as conn:
        conn.execute(delete(ReportSettingsRow))
    for name in REPORT_VIEWS:
        assert _rows(engine, VIEWS.tables[name], "store_id") == [], name
    with pytest.raises(StorageError, match="no report settings row"):
        read_report_settings(engine)
    write_report_settings(engine, 5, False)  # restores the row
    assert _rows(engine, report_visits_daily, "visits") == [(10,)]


def test_report_views_exist_with_contract_columns(engine: Engine) -> None:
    insp = inspect(engine)
    assert set(REPORT_VIEWS) <= set(insp.get_view_names())
    for name in REPORT_VIEWS:
        got = [c["name"] for c in insp.get_columns(name)]
        assert got == [c.name for c in VIEWS.tables[name].columns], name


def test_downgrade_to_0002_and_back(engine: Engine, make_visit: MakeVisit) -> None:
    _write(engine, make_visit, many(6))
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")  # 0003's UTC views come back, offsets go
    insp = inspect(engine)
    assert {"report_emotion_hourly", "report_visits_daily"} <= set(insp.get_view_names())
    assert "report_emotion_daily" not in insp.get_view_names()
    assert "store_utc_offsets" not in insp.get_table_names()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
    assert current_revision(engine) == "0002"
    insp = inspect(engine)
    assert not set(REPORT_VIEWS) & set(insp.get_view_names())
    assert "visits_hourly" in insp.get_view_names()
    assert "report_settings" not in insp.get_table_names()
    assert migrate(engine) == head_revision()
    assert read_report_settings(engine) == (5, False)
    assert _rows(engine, report_visits_daily, "visits") == [(6,)]


@pytest.mark.parametrize(("view", "label"), [(report_age_daily, "age_bracket"),
                                             (report_gender_daily, "gender"),
                                             (report_emotion_daily, "emotion")])
def test_visits_without_a_usable_crop_are_an_unknown_share(
        engine: Engine, make_visit: MakeVisit, view: Table, label: str) -> None:
    # A track without a usable crop is a visit with n_crops = 0 and no labels.
    _write(engine, make_visit, many(6, age=None, gender=None, emotion=None, n_crops=0,
                                    gender_score=None, emotion_scores=None)
           + many(7, gender="male", emotion="sad", age=70))
    assert _rows(engine, report_visits_daily, "visits") == [(13,)]  # footfall counts all
    assert dict(_rows(engine, view, label, "visits"))["unknown"] == 6


@pytest.mark.parametrize(("args", "k"), [
    (["--k", "2"], 5),  # below the floor: raised to it
    (["--k", "2", "--config", "{cfg}"], 2),  # the config lowers the floor on purpose
    ([], 5),
])
def test_provision_writes_k_with_its_floor_and_the_store_zones(
        engine: Engine, db_url: str, tmp_path: Path, args: list[str], k: int) -> None:
    from typer.testing import CliRunner

    from audience.cli import app

    cfg = tmp_path / "c.yaml"
    cfg.write_text("report:\n  k_floor: 2\n  timezones: {store-1: Europe/Berlin}\n")
    res = CliRunner().invoke(app, ["dashboards", "provision", "--superset-url",
                                   "http://127.0.0.1:1", "--password", "x", "--db", db_url,
                                   *(a.format(cfg=cfg) for a in args)])
    assert res.exit_code == 3 and "Traceback" not in res.output  # no Superset: one line
    assert read_report_settings(engine) == (k, False)
    assert read_store_time_zones(engine) == ({"store-1": "Europe/Berlin"} if "--config" in args
                                             else {})
