"""The dashboards' PostgreSQL identities: isolation that holds whatever SQL Superset sends.

Superset's row-level-security filter is added to the query Superset writes; a custom SQL
metric can call a function that runs its own SQL (``query_to_xml``...), which the filter never
sees. So the database itself decides what a dashboard login can read:

- ``dashboards.report_*``: one security-barrier view per published ``report_*`` view, showing
  the rows of the stores that ``dashboard_access`` grants to ``current_user``, nothing else.
- ``<reader>_read`` (no login): SELECT on those views, USAGE on schema ``dashboards``, and
  nothing more; never ``visits``, never the ``report_*`` views underneath.
- ``<reader>`` (login, e.g. ``audience_dashboards``): Superset's connection; granted every
  store (``'*'``). Superset uses it only for admins (superset_hooks.connection_mutator).
- ``<reader>_<hex>`` (login, one per store manager, by ``grant``): granted their stores.

All of them: no superuser, no CREATEROLE/CREATEDB, no membership of pg_read_server_files or
any other predefined role, owner of nothing, ``search_path`` = ``dashboards``. EXECUTE on the
functions that run an SQL string, read server files or large objects, or report settings and
table statistics is revoked from PUBLIC in this database (superusers keep it).

Every step is idempotent; provisioning runs it as the migration (owner) user.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from sqlalchemy import Connection, Engine, text

from audience.core.errors import InputError
from audience.reports.dashboards.superset_hooks import READER_SUFFIX, role_password, user_role
from audience.storage.db import StorageError, mask

log = logging.getLogger(__name__)

SCHEMA = "dashboards"
ACCESS = "public.dashboard_access"
ALL_STORES = "*"  # not a valid store id, so it cannot clash with one

#: pg_catalog functions a dashboard login must not run: they run an SQL string of their own
#: (so a query-level filter never sees it), read server files, large objects or other
#: connections, reveal settings and the server's address, or count what every store writes
#: (table sizes and statistics, transaction ids, the WAL position).
BLOCKED = (
    "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema",
    "table_to_xml", "table_to_xmlschema", "table_to_xml_and_xmlschema",
    "cursor_to_xml", "cursor_to_xmlschema",
    "schema_to_xml", "schema_to_xmlschema", "schema_to_xml_and_xmlschema",
    "database_to_xml", "database_to_xmlschema", "database_to_xml_and_xmlschema",
    "ts_stat", "ts_rewrite",
    "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file",
    "current_setting", "set_config", "pg_show_all_settings",
    "pg_relation_size", "pg_table_size", "pg_indexes_size", "pg_total_relation_size",
    "pg_database_size", "pg_relation_filepath", "pg_relation_filenode",
    "pg_tablespace_size", "pg_tablespace_location",
    "inet_server_addr", "inet_server_port", "pg_postmaster_start_time", "pg_conf_load_time",
    "txid_current", "txid_current_if_assigned", "txid_current_snapshot", "txid_status",
    "pg_current_xact_id", "pg_current_xact_id_if_assigned", "pg_current_snapshot",
    "pg_xact_status", "pg_last_committed_xact", "pg_xact_commit_timestamp",
    "pg_xact_commit_timestamp_origin",
    "pg_current_wal_lsn", "pg_current_wal_insert_lsn", "pg_current_wal_flush_lsn",
)
#: Name patterns (LIKE) blocked the same way: large objects, directory listings, statistics
#: (row counts per table, other connections' activity), dblink where installed.
BLOCKED_LIKE = ("lo\\_%", "loread", "lowrite", "pg\\_ls\\_%", "pg\\_stat\\_get\\_%",
                "pg\\_file\\_%", "dblink%")


def reader_name(database: str) -> str:
    """The reader login of a database: ``<database>_dashboards`` (roles are per cluster, so
    two audience databases on one server do not share one)."""
    base = re.sub(r"[^a-z0-9_]", "_", database.lower())[:40] or "audience"
    return base + READER_SUFFIX


def _q(name: str) -> str:
    """A double-quoted identifier (role names are ours, but quote them anyway)."""
    return '"' + name.replace('"', '""') + '"'


def _check_postgres(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        raise InputError(f"store isolation needs PostgreSQL; {mask(engine)} is "
                           f"{engine.dialect.name}: per-store dashboard access cannot be "
                           "granted on it (admins may still chart it)")


def _check_can_create_roles(conn: Connection) -> None:
    ok = conn.execute(text("SELECT rolsuper OR rolcreaterole FROM pg_roles "
                           "WHERE rolname = current_user")).scalar()
    if not ok:
        raise StorageError("the --db user may not create roles: provision the dashboards with "
                           "the migration (owner) user, which needs CREATEROLE")


def _ensure_login(conn: Connection, role: str, group: str, key: str, database: str) -> None:
    """A login role with a key-derived password, member of ``group``, nothing else."""
    attrs = ("LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS "
             "CONNECTION LIMIT 20")
    # A concurrent provisioning may create it first: that is fine, the ALTER below settles it.
    conn.execute(text(f"DO $$ BEGIN CREATE ROLE {_q(role)} {attrs}; "
                      "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"))
    conn.execute(text(f"ALTER ROLE {_q(role)} {attrs} PASSWORD "
                      f"'{role_password(role, key)}'"))  # hex only: nothing to escape
    conn.execute(text(f"GRANT {_q(group)} TO {_q(role)}"))
    conn.execute(text(f"ALTER ROLE {_q(role)} IN DATABASE {_q(database)} "
                      f"SET search_path = {SCHEMA}"))


def _report_views(conn: Connection) -> list[str]:
    return list(conn.execute(text(
        "SELECT viewname FROM pg_views WHERE schemaname = 'public' "
        "AND viewname LIKE 'report\\_%' ORDER BY viewname")).scalars())


def _blocked_functions(conn: Connection) -> list[str]:
    like = " OR ".join(f"p.proname LIKE '{p}'" for p in BLOCKED_LIKE)
    rows = conn.execute(text(
        "SELECT p.oid::regprocedure::text FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname NOT IN ('information_schema') "
        f"AND (p.proname = ANY(:names) OR {like}) ORDER BY 1"), {"names": list(BLOCKED)})
    return list(rows.scalars())


def ensure_reader(engine: Engine, key: str) -> str:
    """Create or update the schema, views, group, reader and revocations; return the reader."""
    _check_postgres(engine)
    database = str(engine.url.database)
    reader = reader_name(database)
    group = reader + "_read"
    with engine.begin() as conn:
        _check_can_create_roles(conn)
        # One provisioning at a time per database (roles are shared, DDL is not atomic).
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('audience dashboards'))"))
        conn.execute(text(f"DO $$ BEGIN CREATE ROLE {_q(group)} NOLOGIN; EXCEPTION WHEN "
                          "duplicate_object OR unique_violation THEN NULL; END $$"))
        conn.execute(text(f"GRANT CONNECT ON DATABASE {_q(database)} TO {_q(group)}"))
        conn.execute(text(f"CREATE TABLE IF NOT EXISTS {ACCESS} (db_role text NOT NULL, "
                          "store_id text NOT NULL, PRIMARY KEY (db_role, store_id))"))
        conn.execute(text(f"REVOKE ALL ON {ACCESS} FROM PUBLIC"))
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        conn.execute(text(f"REVOKE ALL ON SCHEMA {SCHEMA} FROM PUBLIC"))
        conn.execute(text(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {_q(group)}"))
        # Nobody but owners creates objects in public (the default before PostgreSQL 15).
        conn.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        views = _report_views(conn)
        if not views:
            raise StorageError("the database has no report_* views: run `audience db upgrade` "
                               "first")
        for view in views:
            # Re-created each time: a view's `*` is fixed when it is created, and a migration
            # may have added columns underneath.
            conn.execute(text(f"DROP VIEW IF EXISTS {SCHEMA}.{view}"))
            conn.execute(text(
                f"CREATE VIEW {SCHEMA}.{view} WITH (security_barrier = true) AS "
                f"SELECT r.* FROM public.{view} r WHERE EXISTS (SELECT 1 FROM {ACCESS} a "
                f"WHERE a.db_role = current_user AND a.store_id IN (r.store_id, "
                f"'{ALL_STORES}'))"))
            conn.execute(text(f"REVOKE ALL ON {SCHEMA}.{view} FROM PUBLIC"))
            conn.execute(text(f"GRANT SELECT ON {SCHEMA}.{view} TO {_q(group)}"))
        if conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
                        ).scalar():
            for fn in _blocked_functions(conn):
                conn.execute(text(f"REVOKE EXECUTE ON FUNCTION {fn} FROM PUBLIC, {_q(group)}"))
        else:  # only a superuser may revoke on pg_catalog; the views still isolate stores
            log.warning("not a superuser: EXECUTE on query_to_xml, pg_read_file and the like "
                        "stays granted to PUBLIC; provision as a superuser to revoke it")
        _ensure_login(conn, reader, group, key, database)
        conn.execute(text(f"INSERT INTO {ACCESS} VALUES (:r, :s) ON CONFLICT DO NOTHING"),
                     {"r": reader, "s": ALL_STORES})
    log.info("dashboards reader %s: %d views in schema %s", reader, len(views), SCHEMA)
    return reader


def grant_stores(engine: Engine, username: str, stores: Iterable[str], key: str) -> str:
    """Give the Superset user ``username`` a login role that sees ``stores``; return it."""
    reader = ensure_reader(engine, key)
    role = user_role(reader, username, key)
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('audience dashboards'))"))
        _ensure_login(conn, role, reader + "_read", key, str(engine.url.database))
        for store in stores:
            conn.execute(text(f"INSERT INTO {ACCESS} VALUES (:r, :s) ON CONFLICT DO NOTHING"),
                         {"r": role, "s": store})
    return role


def granted_stores(engine: Engine, role: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text(f"SELECT store_id FROM {ACCESS} WHERE db_role = :r "
                                      "ORDER BY 1"), {"r": role}).scalars())


def drop_roles(engine: Engine) -> list[str]:
    """Drop this database's dashboard roles and what they were granted (roles outlive a
    dropped database: a cluster that hosts throwaway databases would collect them)."""
    _check_postgres(engine)
    reader = reader_name(str(engine.url.database))
    with engine.begin() as conn:
        roles = list(conn.execute(text(
            "SELECT rolname FROM pg_roles WHERE rolname = :r OR rolname LIKE :p "
            "ORDER BY length(rolname) DESC"),
            {"r": reader, "p": reader.replace("_", "\\_") + "\\_%"}).scalars())
        for role in roles:
            conn.execute(text(f"DROP OWNED BY {_q(role)}"))
            conn.execute(text(f"DROP ROLE {_q(role)}"))
    return roles
