"""`audience purge`: retention by ended_at, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import typer
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from audience.core.errors import SERVICE_EXIT as STORAGE_EXIT
from audience.core.visit import Visit
from audience.storage.purge import parse_duration, purge_visits
from audience.storage.schema import VisitRow
from audience.storage.sink import VisitSink

MakeVisit = Callable[..., Visit]
NOW = datetime(2024, 9, 1, 12, 0, tzinfo=UTC)


def _app() -> typer.Typer:
    from audience.cli import app

    return app


def _store(engine: Engine, visits: list[Visit]) -> None:
    with VisitSink(engine) as sink:
        for v in visits:
            sink.add(v)


def _track_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(VisitRow.track_id)).scalars())


@pytest.mark.parametrize(("text", "expected"), [
    ("36h", timedelta(hours=36)), ("90d", timedelta(days=90)), ("12w", timedelta(weeks=12)),
    (" 7D ", timedelta(days=7)), ("1h", timedelta(hours=1)),
])
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "90", "d", "-3d", "1.5d", "90 days", "30m", "0h"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_purge_deletes_by_ended_at(engine: Engine, make_visit: MakeVisit) -> None:
    cutoff = NOW - timedelta(days=90)
    _store(engine, [
        make_visit(track_id="old", started_at=cutoff - timedelta(days=3)),
        # started before the cutoff but ended after it: still inside the retention period
        make_visit(track_id="straddles", started_at=cutoff - timedelta(seconds=10), dwell_s=60),
        make_visit(track_id="new", started_at=NOW - timedelta(days=1)),
    ])
    dry = purge_visits(engine, timedelta(days=90), dry_run=True, now=NOW)
    assert dry.visits == 1 and dry.dry_run and dry.cutoff == cutoff
    assert _track_ids(engine) == {"old", "straddles", "new"}  # a dry run changes nothing
    res = purge_visits(engine, timedelta(days=90), now=NOW)
    assert res.visits == 1 and not res.dry_run
    assert _track_ids(engine) == {"straddles", "new"}
    assert purge_visits(engine, timedelta(days=90), now=NOW).visits == 0  # idempotent


def test_cli_purge(engine: Engine, db_url: str, make_visit: MakeVisit) -> None:
    now = datetime.now(UTC)
    _store(engine, [make_visit(track_id=f"o{i}", started_at=now - timedelta(days=100 + i))
                    for i in range(3)] + [make_visit(track_id="n", started_at=now)])
    runner = CliRunner()
    res = runner.invoke(_app(), ["purge", "--older-than", "90d", "--db", db_url, "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "would delete 3 visits" in res.stdout and "dry run" in res.stdout
    res = runner.invoke(_app(), ["purge", "--older-than", "90d", "--db", db_url])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("deleted 3 visits that ended before")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(VisitRow)).scalar_one() == 1


def test_cli_purge_bad_duration_is_exit_2() -> None:
    res = CliRunner().invoke(_app(), ["purge", "--older-than", "90", "--db", "sqlite://"])
    assert res.exit_code == 2 and "not a duration" in res.output
    assert "Traceback" not in res.output


def test_cli_purge_not_migrated(db_url: str) -> None:
    if db_url.startswith("sqlite"):  # a SQLite file that does not exist yet
        res = CliRunner().invoke(_app(), ["purge", "--older-than", "90d", "--db", db_url])
        assert res.exit_code == STORAGE_EXIT and "audience db upgrade" in res.stderr
        return
    res = CliRunner().invoke(_app(), ["purge", "--older-than", "90d", "--db", db_url])
    assert res.exit_code == STORAGE_EXIT and "not migrated" in res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.output


def test_cli_purge_unreachable_masks_password() -> None:
    res = CliRunner().invoke(_app(), ["purge", "--older-than", "90d", "--db",
                                      "postgresql://postgres:pw@127.0.0.1:1/x"])
    assert res.exit_code == STORAGE_EXIT and "cannot reach the database" in res.stderr
    assert ":pw@" not in res.stderr and res.stderr.count("\n") == 1
