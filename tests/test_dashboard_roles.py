"""Store isolation in PostgreSQL itself: what a dashboards login can and cannot read.

Fast, database-only checks of reports/dashboards/dbroles.py against a real PostgreSQL with two
stores of seeded visits; tests/test_dashboards.py attacks the same roles through Superset.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from attacks import ATTACKS
from conftest import _pg_database
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from store_data import visits as seeded_visits

from audience.core.errors import InputError
from audience.reports.dashboards import dbroles
from audience.reports.dashboards.superset_hooks import role_password, user_role
from audience.storage.db import migrate, open_engine
from audience.storage.report_settings import write_report_settings
from audience.storage.sink import VisitSink

pytestmark = [pytest.mark.postgres]

KEY = "test-role-key"
MANAGER = "a-manager"  # the Superset user name; the role name never carries it


@pytest.fixture(scope="module")
def stores() -> Iterator[Engine]:
    """One PostgreSQL database, two stores of seeded visits (north and south)."""
    for url in _pg_database():
        engine = open_engine(url)
        migrate(engine)
        sink = VisitSink(engine, batch_size=500)
        for v in seeded_visits():
            sink.add(v)
        sink.flush()
        write_report_settings(engine, 5, False)
        try:
            yield engine
        finally:
            dbroles.drop_roles(engine)
            engine.dispose()


def _login(engine: Engine, role: str) -> Engine:
    url = engine.url.set(username=role, password=role_password(role, KEY))
    return create_engine(url)


def _one(engine: Engine, sql: str) -> object:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def _manager(engine: Engine) -> tuple[str, Engine]:
    role = dbroles.grant_stores(engine, MANAGER, ["south"], KEY)
    return role, _login(engine, role)


def test_a_manager_sees_their_store_and_the_reader_every_store(stores: Engine) -> None:
    reader = dbroles.ensure_reader(stores, KEY)
    role, manager = _manager(stores)
    assert MANAGER not in role and "south" not in role
    all_rows = _one(stores, "SELECT sum(visits) FROM public.report_visits_daily")
    south = _one(stores, "SELECT sum(visits) FROM public.report_visits_daily "
                         "WHERE store_id = 'south'")
    try:
        assert _one(manager, "SELECT string_agg(DISTINCT store_id, ',') "
                             "FROM report_visits_daily") == "south"
        assert _one(manager, "SELECT sum(visits) FROM report_visits_daily") == south
        with _login(stores, reader).connect() as conn:
            assert conn.execute(text("SELECT sum(visits) FROM report_visits_daily")
                                ).scalar() == all_rows
    finally:
        manager.dispose()
    assert all_rows and south and all_rows != south


def test_the_roles_hold_no_power(stores: Engine) -> None:
    reader = dbroles.ensure_reader(stores, KEY)
    role, _ = _manager(stores)
    with stores.connect() as conn:
        for r in (reader, role):
            attrs = conn.execute(text(
                "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls "
                "FROM pg_roles WHERE rolname = :r"), {"r": r}).one()
            assert not any(attrs), r
            member_of = set(conn.execute(text(
                "SELECT b.rolname FROM pg_roles b WHERE pg_has_role(:r, b.oid, 'MEMBER') "
                "AND b.rolname <> :r"), {"r": r}).scalars())
            assert member_of == {reader + "_read"}, r
            owns = conn.execute(text(
                "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles "
                "WHERE rolname = :r)"), {"r": r}).scalar()
            assert owns == 0
            for table in ("public.visits", "public.report_visits_daily",
                          "public.dashboard_access", "public.store_utc_offsets",
                          "public.share_estimates", "public.report_share_estimates"):
                assert not conn.execute(text("SELECT has_table_privilege(:r, :t, 'SELECT')"),
                                        {"r": r, "t": table}).scalar(), (r, table)




def test_a_manager_reads_only_their_stores_share_rows(stores: Engine) -> None:
    from audience.reports.dashboards.shares import fill

    filled = fill(stores, ["north", "south"])  # every day: the seeded ones are in the past
    assert all(f.rows for f in filled)
    dbroles.ensure_reader(stores, KEY)  # the share view is one of the isolated views
    _, manager = _manager(stores)
    every = _one(stores, "SELECT string_agg(DISTINCT store_id, ',' ORDER BY store_id) "
                         "FROM public.report_share_estimates")
    south = _one(stores, "SELECT count(*) FROM public.report_share_estimates "
                         "WHERE store_id = 'south'")
    try:
        assert _one(manager, "SELECT string_agg(DISTINCT store_id, ',') "
                             "FROM report_share_estimates") == "south"
        assert _one(manager, "SELECT count(*) FROM report_share_estimates") == south
        assert _one(manager, "SELECT count(*) FROM report_share_estimates "
                             "WHERE store_id = 'north'") == 0
        for table in ("public.share_estimates", "public.report_share_estimates"):
            with pytest.raises(DBAPIError, match="permission denied"):
                _one(manager, f"SELECT count(*) FROM {table}")
    finally:
        manager.dispose()
    assert every == "north,south" and south


@pytest.mark.parametrize("name", list(ATTACKS))
def test_a_manager_cannot_run_sql_strings_or_read_the_server(stores: Engine, name: str) -> None:
    _, manager = _manager(stores)
    sql = f"SELECT {ATTACKS[name]} FROM report_visits_daily LIMIT 1"
    try:
        with pytest.raises(DBAPIError, match="permission denied"):
            _one(manager, sql)
    finally:
        manager.dispose()


def test_xml_external_entities_read_no_file(stores: Engine) -> None:
    _, manager = _manager(stores)
    hostname = str(_one(stores, "SELECT pg_read_file('/etc/hostname')")).strip()
    try:
        got = _one(manager, "SELECT xpath('/x/text()', xmlparse(document '<!DOCTYPE x "
                            "[<!ENTITY e SYSTEM \"file:///etc/hostname\">]><x>&e;</x>'))::text")
    finally:
        manager.dispose()
    assert hostname and hostname not in str(got)


def test_a_function_that_runs_its_own_sql_sees_one_store(stores: Engine) -> None:
    """The views, not the revocations, isolate: with EXECUTE granted back (a provisioning
    that is not a superuser cannot revoke it), query_to_xml still sees one store."""
    role, manager = _manager(stores)
    with stores.begin() as conn:
        conn.execute(text("GRANT EXECUTE ON FUNCTION query_to_xml(text, bool, bool, text) "
                          f'TO "{role}"'))
    try:
        xml = str(_one(manager, "SELECT query_to_xml('select store_id, sum(visits) v from "
                                "report_visits_daily group by 1', true, false, '')::text"))
    finally:
        manager.dispose()
    assert "<store_id>south</store_id>" in xml and "north" not in xml


def test_granting_twice_changes_nothing(stores: Engine) -> None:
    first = dbroles.grant_stores(stores, MANAGER, ["south"], KEY)
    assert dbroles.grant_stores(stores, MANAGER, ["south"], KEY) == first
    assert dbroles.granted_stores(stores, first) == ["south"]
    assert first == user_role(dbroles.reader_name(str(stores.url.database)), MANAGER, KEY)


def test_sqlite_is_refused_with_one_line() -> None:
    engine = create_engine("sqlite://")
    with pytest.raises(InputError, match="store isolation needs PostgreSQL"):
        dbroles.ensure_reader(engine, KEY)


def test_the_isolation_bench_compares_like_with_like(stores: Engine) -> None:
    from audience.reports.dashboards.bench import QUERIES, isolation_cost

    def census() -> tuple[int, int]:
        with stores.connect() as conn:
            return (conn.execute(text(f"SELECT count(*) FROM {dbroles.ACCESS}")).scalar_one(),
                    conn.execute(text("SELECT count(*) FROM pg_roles")).scalar_one())

    dbroles.ensure_reader(stores, KEY)
    before = census()
    result = isolation_cost(stores, "south", KEY, runs=3)
    assert set(result) == set(QUERIES)
    assert all(r["same_rows"] == 1.0 and r["rows"] > 0 for r in result.values()), result
    assert census() == before  # its throwaway manager and grant are gone
