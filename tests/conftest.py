"""Shared fixtures. Integrations run against real servers: PostgreSQL must be up (no skips)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from audience.core.visit import Visit, age_bracket
from audience.storage.db import migrate, open_engine

PG_ADMIN_URL = os.environ.get("AUDIENCE_TEST_PG_ADMIN_URL",
                              "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_database() -> Iterator[str]:
    admin_url = make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg2")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT",
                          connect_args={"connect_timeout": 5})
    name = f"audience_test_{uuid.uuid4().hex[:12]}"
    reason = None
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0]
    if reason is not None:  # failed outside the except block: no chained traceback noise
        admin.dispose()
        pytest.fail(f"PostgreSQL is not reachable at "
                    f"{admin_url.render_as_string(hide_password=True)} ({reason}): start it, "
                    "or point AUDIENCE_TEST_PG_ADMIN_URL at a server where this user may "
                    "CREATE DATABASE", pytrace=False)
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            # FORCE: a test that leaked a pooled connection must not leave the database behind.
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """URL of a fresh, empty database: a SQLite file or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audience.db'}"
    else:
        yield from _pg_database()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated database's engine, disposed after the test."""
    eng = open_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()


T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


@pytest.fixture
def make_visit() -> Callable[..., Visit]:
    """Factory of plausible visits; any field can be overridden."""
    counter = iter(range(1_000_000))

    def make(**over: Any) -> Visit:
        n = next(counter)
        started = over.pop("started_at", T0 + timedelta(minutes=n))
        dwell = over.pop("dwell_s", 30.0)
        age = over.pop("age", 30.0)
        bracket = age_bracket(age) if age is not None else None
        fields: dict[str, Any] = dict(
            store_id="store-1", camera_id="cam-1", track_id=f"t{n}", started_at=started,
            ended_at=started + timedelta(seconds=dwell), dwell_s=dwell, n_crops=5,
            model_version="test-1", age=age, age_bracket=bracket,
            gender="female", gender_score=0.9, emotion="happy",
            emotion_scores={"happy": 0.8, "neutral": 0.2},
        )
        fields.update(over)
        return Visit(**fields)

    return make
