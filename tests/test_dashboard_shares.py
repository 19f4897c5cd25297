"""The dashboards' share table (reports/dashboards/shares.py, migration 0009): filled from the
published cells by the report's own code, idempotent, gated by the views' k, time zone and
ethnicity setting, and equal to `audience report`'s corrected shares and intervals."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text
from typer.testing import CliRunner

from audience.cli import app
from audience.core.visit import Visit
from audience.reports.dashboards.shares import fill
from audience.reports.report import build_report, report_shares
from audience.storage.demo_data import fill_demo_store
from audience.storage.published import Window
from audience.storage.report_settings import write_report_settings, write_store_time_zones
from audience.storage.schema import report_share_estimates
from audience.storage.sink import VisitSink

NOW = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)
FIRST = date(2026, 3, 2)


def _rows(engine: Engine, store: str = "s1") -> dict[tuple[str, str, str], tuple[int, str]]:
    """(period, head, label) -> (visits, share_text) as the dashboards read them."""
    c = report_share_estimates.c
    with engine.connect() as conn:
        found = conn.execute(select(c.period, c.head, c.label, c.visits, c.share_text)
                             .where(c.store_id == store)).all()
    return {(p, h, lb): (n, t) for p, h, lb, n, t in found}


def _seed(engine: Engine, make_visit: Callable[..., Visit], seed: int = 3) -> None:
    rng = random.Random(seed)
    with VisitSink(engine) as sink:
        for _ in range(260):
            start = datetime(2026, 3, 2, tzinfo=UTC) + timedelta(
                days=rng.randint(0, 3), hours=rng.choice((0, 9, 13, 17, 23)),
                minutes=rng.randint(0, 59))
            sink.add(make_visit(
                store_id="s1", camera_id=rng.choice(("c1", "c1", "c2")), started_at=start,
                age=rng.choice((None, 8.0, 22.0, 30.0, 30.0, 40.0, 70.0)),
                gender=rng.choice((None, "female", "male", "male")),
                emotion=rng.choice((None, "happy", "happy", "neutral", "sad")),
                ethnicity=rng.choice(("asian", "white", "black"))))


@pytest.mark.parametrize("time_zone", ["UTC", "America/New_York"])
def test_the_table_holds_the_reports_shares_and_intervals(
        engine: Engine, make_visit: Callable[..., Visit], time_zone: str) -> None:
    """Parity: every day, and the whole window, as `audience report` prints them (SQLite and
    PostgreSQL)."""
    _seed(engine, make_visit)
    write_report_settings(engine, 5, False)
    write_store_time_zones(engine, {"s1": time_zone})
    (filled,) = fill(engine, ["s1"], since=FIRST, now=NOW)
    rows = _rows(engine)
    assert filled.rows == len(rows) and filled.days >= 3
    last = filled.last
    periods = {p for p, _, _ in rows}
    for day in [FIRST + timedelta(days=i) for i in range((last - FIRST).days + 1)]:
        report = build_report(engine, "s1", Window(time_zone, day, day + timedelta(days=1)),
                              k=5, now=NOW)
        want = {(day.isoformat(), title, s.label): (s.count, s.text())
                for title, hs in report_shares(report).items() for s in hs.shares
                if s.count and s.label != "unknown"}
        got = {key: v for key, v in rows.items() if key[0] == day.isoformat()}
        assert got == want, day
        assert bool(want) == (day.isoformat() in periods)
    whole = build_report(engine, "s1", Window(time_zone, FIRST, None), k=5, now=NOW)
    period = f"{FIRST.isoformat()} to {last.isoformat()}"
    want = {(period, title, s.label): (s.count, s.text())
            for title, hs in report_shares(whole).items() for s in hs.shares
            if s.count and s.label != "unknown"}
    assert {key: v for key, v in rows.items() if key[0] == period} == want
    assert want


def test_a_hidden_cell_never_gets_a_share(engine: Engine,
                                          make_visit: Callable[..., Visit]) -> None:
    """A label with fewer than k visits on its camera-day is hidden in the views: the table
    has no row for it, and its visits are left out of the other labels' base too."""
    t0 = datetime(2026, 3, 2, 10, tzinfo=UTC)
    with VisitSink(engine) as sink:
        for i, emotion in enumerate(["happy"] * 9 + ["neutral"] * 8 + ["sad"] * 2
                                    + ["angry"] * 3 + ["fear"]):
            sink.add(make_visit(store_id="s1", started_at=t0 + timedelta(minutes=i),
                                emotion=emotion))
    write_report_settings(engine, 5, False)
    fill(engine, ["s1"], since=FIRST, now=NOW)
    emotions = {lb: v for (p, h, lb), v in _rows(engine).items() if h == "Emotion"}
    assert set(emotions) == {"happy", "neutral"}  # 2 + 3 + 1 hidden: 6, no more to hide
    with engine.connect() as conn:
        shown = dict(conn.execute(text(
            "SELECT emotion, sum(visits) FROM report_emotion_daily GROUP BY emotion")).all())
    assert {lb: n for lb, (n, _) in emotions.items()} == {k: int(v) for k, v in shown.items()}


def test_filling_again_changes_nothing_and_the_view_follows_the_settings(
        engine: Engine, make_visit: Callable[..., Visit]) -> None:
    _seed(engine, make_visit)
    write_report_settings(engine, 5, True)
    fill(engine, ["s1"], since=FIRST, now=NOW)
    first = _rows(engine)
    fill(engine, ["s1"], since=FIRST, now=NOW)
    assert _rows(engine) == first
    fill(engine, ["s1"], since=NOW.date(), now=NOW)  # today only: the window's rows stay
    assert _rows(engine) == first
    assert any(" to " in p for p, _, _ in first)
    assert any(h == "Ethnicity" for _, h, _ in first)  # enabled: published like the others
    write_report_settings(engine, 5, False)
    assert first and not any(h == "Ethnicity" for _, h, _ in _rows(engine))
    write_report_settings(engine, 6, False)  # rows of k=5 could show what k=6 hides
    assert _rows(engine) == {}
    write_report_settings(engine, 5, False)
    write_store_time_zones(engine, {"s1": "Asia/Tokyo"})  # days cut elsewhere: stale rows
    assert _rows(engine) == {}
    fill(engine, ["s1"], since=FIRST, now=NOW)
    assert _rows(engine) and not any(h == "Ethnicity" for _, h, _ in _rows(engine))
    with engine.connect() as conn:  # refilled without ethnicity: its rows are gone
        assert not conn.execute(text("SELECT count(*) FROM share_estimates "
                                     "WHERE head = 'Ethnicity'")).scalar()


def test_the_command_fills_demo_data_and_says_what_it_wrote(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/demo.db"
    runner = CliRunner()
    done = runner.invoke(app, ["demo-data", "--db", url, "--days", "3"])
    assert done.exit_code == 0, done.output
    done = runner.invoke(app, ["dashboards", "shares", "--db", url, "--all"])
    assert done.exit_code == 0, done.output
    lines = done.output.strip().splitlines()
    assert lines[0].startswith("store demo-store: ") and "for 3 days with published" in lines[0]
    assert lines[-1].startswith("wrote ") and "for 1 stores into share_estimates" in lines[-1]
    again = runner.invoke(app, ["dashboards", "shares", "--db", url, "--all"])
    assert again.output.splitlines()[-1] == lines[-1]  # the same rows, replaced
    from audience.storage.db import open_engine

    engine = open_engine(url)
    try:
        rows = _rows(engine, "demo-store")
    finally:
        engine.dispose()
    assert rows and all(t.endswith("%)") and "% (" in t for _, t in rows.values())


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--store", "nope"], 2, "no visits for store 'nope'"),
    (["--store", "a b"], 2, "is not a valid id"),
    (["--db", "sqlite:////nonexistent/dir/x.db"], 3, "no SQLite database"),
])
def test_errors_are_one_clear_line(tmp_path: object, args: list[str], code: int,
                                   message: str) -> None:
    url = f"sqlite:///{tmp_path}/demo.db"
    runner = CliRunner()
    assert runner.invoke(app, ["demo-data", "--db", url, "--days", "1"]).exit_code == 0
    done = runner.invoke(app, ["dashboards", "shares", "--db", url, *args])
    assert done.exit_code == code, done.output
    assert message in done.output and "Traceback" not in done.output
    assert len(done.output.strip().splitlines()) == 1


def test_without_the_settings_row_nothing_is_written(engine: Engine) -> None:
    fill_demo_store(engine, "s1", days=2)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM report_settings"))
    from audience.storage.db import StorageError

    with pytest.raises(StorageError, match="no report settings row"):
        fill(engine, ["s1"])


def test_0009_goes_down_and_up_again(db_url: str) -> None:
    from alembic import command

    from audience.storage.db import alembic_config, current_revision, migrate, open_engine

    engine = open_engine(db_url)
    try:
        assert migrate(engine) == "0009"
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0008")
        assert current_revision(engine) == "0008"
        with engine.connect() as conn:
            assert not conn.dialect.has_table(conn, "share_estimates")
        assert migrate(engine) == "0009"
    finally:
        engine.dispose()
