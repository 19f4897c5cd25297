"""The pipeline's writer login (audience/storage/roles.py) against a real PostgreSQL: what it
is, that the sink, the purge and `db check` work as it, and what it cannot do."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from conftest import T0, _pg_database
from sqlalchemy import Engine, make_url, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from audience.cli import app
from audience.core.visit import Visit
from audience.reports.dashboards import dbroles
from audience.storage.db import open_engine
from audience.storage.purge import purge_visits
from audience.storage.roles import drop_writer
from audience.storage.sink import VisitSink

pytestmark = [pytest.mark.postgres]

PASSWORD = "9c2f51d0a7e44b3c8e61f0d2b7a95e13"  # a test value, not a placeholder


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[Engine, str, str]]:
    """A database migrated by `audience db upgrade` with a writer URL; (owner engine, owner
    URL, writer URL). The role name is per database: roles are shared by the cluster."""
    for url in _pg_database():
        owner = open_engine(url)
        role = f"w_{owner.url.database}"[:60]
        writer_url = owner.url.set(drivername="postgresql", username=role,
                                   password=PASSWORD).render_as_string(hide_password=False)
        done = CliRunner().invoke(app, ["db", "upgrade", "--db", url],
                                  env={"WRITER_DATABASE_URL": writer_url})
        assert done.exit_code == 0, done.output
        assert PASSWORD not in done.output and f"writer role {role}" in done.output
        dbroles.ensure_reader(owner, "test-role-key")  # the dashboards' access table, views
        try:
            yield owner, url, writer_url
        finally:
            dbroles.drop_roles(owner)
            drop_writer(owner, role)
            owner.dispose()


@pytest.fixture
def writer(setup: tuple[Engine, str, str]) -> Iterator[Engine]:
    eng = open_engine(setup[2])
    yield eng
    eng.dispose()


def _role(setup: tuple[Engine, str, str]) -> str:
    return make_url(setup[2]).username or ""


def test_the_role_has_no_powers_and_owns_nothing(setup: tuple[Engine, str, str]) -> None:
    owner, _, _ = setup
    role = _role(setup)
    with owner.connect() as conn:
        attrs = conn.execute(text(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, "
            "rolbypassrls FROM pg_roles WHERE rolname = :r"), {"r": role}).one()
        assert tuple(attrs) == (True, False, False, False, False, False)
        assert conn.execute(text(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
            "WHERE r.rolname = :r"), {"r": role}).scalar() == 0
        assert conn.execute(text(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
            "WHERE r.rolname = :r"), {"r": role}).scalar() == 0
        grants = set(conn.execute(text(
            "SELECT table_schema || '.' || table_name || ':' || privilege_type "
            "FROM information_schema.role_table_grants WHERE grantee = :r"), {"r": role}))
    assert {g for (g,) in grants} == {
        "public.alembic_version:SELECT", "public.stores:SELECT", "public.stores:INSERT",
        "public.cameras:SELECT", "public.cameras:INSERT", "public.visits:SELECT",
        "public.visits:INSERT", "public.visits:UPDATE", "public.visits:DELETE",
        # `dashboards shares`: the views' k and zones, and the share table it replaces
        "public.report_settings:SELECT", "public.store_utc_offsets:SELECT",
        "public.share_estimates:SELECT", "public.share_estimates:INSERT",
        "public.share_estimates:DELETE"}


def test_sink_purge_and_check_work_as_the_writer(
        setup: tuple[Engine, str, str], writer: Engine,
        make_visit: Callable[..., Visit]) -> None:
    with VisitSink(writer, batch_size=10) as sink:
        sink.add(make_visit(track_id="w1", store_id="writer-store"))
        sink.add(make_visit(track_id="w2", store_id="writer-store"))
    with VisitSink(writer) as sink:  # the upsert path: same key again, new label
        sink.add(make_visit(track_id="w1", store_id="writer-store", gender="male"))
    with setup[0].connect() as conn:
        rows = conn.execute(text("SELECT track_id, gender FROM visits WHERE store_id = "
                                 "'writer-store' ORDER BY 1")).all()
    assert [tuple(r) for r in rows] == [("w1", "male"), ("w2", "female")]
    now = T0 + timedelta(days=30)
    assert purge_visits(writer, timedelta(days=1), dry_run=True, now=now).visits >= 2
    assert purge_visits(writer, timedelta(days=1), now=now).visits >= 2
    done = CliRunner().invoke(app, ["db", "check", "--db", setup[2]])
    assert done.exit_code == 0, done.output
    done = CliRunner().invoke(app, ["purge", "--older-than", "90d", "--db", setup[2]])
    assert done.exit_code == 0, done.output


def test_the_scheduled_share_fill_runs_as_the_writer(
        setup: tuple[Engine, str, str], writer: Engine,
        make_visit: Callable[..., Visit]) -> None:
    """`dashboards shares` in compose and the CronJob connects as the writer, not the owner."""
    from datetime import UTC, datetime

    with VisitSink(writer) as sink:
        for i in range(12):
            sink.add(make_visit(track_id=f"s{i}", store_id="share-store",
                                started_at=datetime.now(UTC).replace(hour=0, minute=i)))
    done = CliRunner().invoke(app, ["dashboards", "shares", "--store", "share-store",
                                    "--since", "1d", "--db", setup[2]])
    assert done.exit_code == 0, done.output
    assert "wrote " in done.output and " 0 share rows" not in done.output
    with setup[0].connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM share_estimates WHERE store_id = "
                                 "'share-store'")).scalar()


@pytest.mark.parametrize("sql", [
    "SELECT pg_read_file('/etc/hostname')",
    "CREATE TABLE public.intruder (x int)",
    "CREATE TABLE dashboards.intruder (x int)",
    "SELECT * FROM public.dashboard_access",
    "SELECT * FROM dashboards.report_visits_daily",
    "SELECT * FROM public.report_visits_daily",
    "INSERT INTO public.report_settings (id, k) VALUES (2, 2)",
    "UPDATE public.report_settings SET k = 2",
    "SELECT * FROM public.report_share_estimates",
    "DELETE FROM public.store_utc_offsets",
    "UPDATE public.alembic_version SET version_num = 'x'",
    "DROP TABLE public.visits",
    "CREATE ROLE intruder",
    "SET ROLE postgres",
])
def test_the_writer_cannot(writer: Engine, sql: str) -> None:
    with pytest.raises(DBAPIError, match="permission denied|must be owner"), \
            writer.begin() as conn:
        conn.execute(text(sql))


def test_upgrade_again_keeps_the_role_and_revokes_stray_grants(
        setup: tuple[Engine, str, str], writer: Engine) -> None:
    owner, url, writer_url = setup
    role = _role(setup)
    with owner.begin() as conn:
        conn.execute(text(f'GRANT SELECT ON public.dashboard_access TO "{role}"'))
    done = CliRunner().invoke(app, ["db", "upgrade", "--db", url, "--writer-url", writer_url])
    assert done.exit_code == 0, done.output
    with pytest.raises(DBAPIError, match="permission denied"), writer.connect() as conn:
        conn.execute(text("SELECT * FROM public.dashboard_access"))


@pytest.mark.parametrize(("user", "password", "database", "expect"), [
    ("audience_writer", "change-me", None, "placeholder"),
    ("audience_writer", None, None, "placeholder"),
    ("postgres", PASSWORD, None, "migration user"),
    ("Bad-Name", PASSWORD, None, "lower-case"),
    ("audience_writer", PASSWORD, "elsewhere", "same database"),
])
def test_bad_writer_urls_are_refused_before_anything_changes(
        setup: tuple[Engine, str, str], user: str, password: str | None,
        database: str | None, expect: str) -> None:
    owner, url, _ = setup
    bad = owner.url.set(drivername="postgresql", username=user, password=password,
                        database=database or owner.url.database)
    done = CliRunner().invoke(app, ["db", "upgrade", "--db", url],
                              env={"WRITER_DATABASE_URL": bad.render_as_string(False)})
    assert done.exit_code == 2, done.output
    lines = done.output.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], done.output
    assert PASSWORD not in done.output
    with owner.connect() as conn:  # refused before the role was touched
        assert not conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = 'Bad-Name'")
                                ).first()


def test_an_existing_powerful_role_is_not_taken_over(setup: tuple[Engine, str, str]) -> None:
    owner, url, _ = setup
    role = f"p_{owner.url.database}"[:60]
    with owner.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" CREATEDB'))
    try:
        bad = owner.url.set(drivername="postgresql", username=role, password=PASSWORD)
        done = CliRunner().invoke(app, ["db", "upgrade", "--db", url],
                                  env={"WRITER_DATABASE_URL": bad.render_as_string(False)})
        assert done.exit_code == 2 and "pick another user name" in done.output, done.output
        with owner.connect() as conn:
            assert conn.execute(text("SELECT rolcreatedb FROM pg_roles WHERE rolname = :r"),
                                {"r": role}).scalar() is True
    finally:
        with owner.begin() as conn:
            conn.execute(text(f'DROP ROLE "{role}"'))


def test_sqlite_has_no_writer_role(tmp_path: object) -> None:
    done = CliRunner().invoke(app, ["db", "upgrade", "--db", f"sqlite:///{tmp_path}/a.db"],
                              env={"WRITER_DATABASE_URL": f"postgresql://w:{PASSWORD}@h/db"})
    assert done.exit_code == 2 and "needs PostgreSQL" in done.output, done.output
    assert PASSWORD not in done.output
