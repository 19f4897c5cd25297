"""The pipeline's own PostgreSQL login: a writer that is neither the owner nor a superuser.

The inference workers (the visit sink), ``audience purge`` and ``audience db check`` connect
with it; only the migration and the dashboards provisioning connect as the owner. Its name
and password come from the URL the workers use (``WRITER_DATABASE_URL``), so one secret
serves both the migration that creates the role and the services that log in with it.

The role: LOGIN, NOSUPERUSER, NOCREATEDB, NOCREATEROLE, NOREPLICATION, NOBYPASSRLS, member of
no role, owner of nothing, and granted exactly:

- CONNECT on the database, USAGE on schema ``public`` (CREATE there is revoked from PUBLIC);
- SELECT on ``alembic_version`` (the "not migrated" check every command makes first);
- SELECT, INSERT on ``stores`` and ``cameras`` (the sink adds a store or camera it meets);
- SELECT, INSERT, UPDATE, DELETE on ``visits`` (the sink's upsert, the purge's DELETE) and
  USAGE on its id sequence.

- SELECT on ``report_settings`` and ``store_utc_offsets`` and SELECT, INSERT, DELETE on
  ``share_estimates``: the scheduled ``audience dashboards shares`` reads the published cells
  with the views' k and time zones and writes the dashboards' share table as this login.

Nothing more on ``report_settings`` or ``store_utc_offsets`` (the provisioning writes them as
the owner; the report views read them as their owner), nothing on the ``report_*`` views, the
``dashboards`` schema or the dashboards' access table. Every run first revokes whatever the
role held elsewhere, so a grant made by hand does not outlive the next upgrade.
"""

from __future__ import annotations

import logging
import re

from sqlalchemy import Connection, Engine, text

from audience.core.errors import INPUT_EXIT, InputError
from audience.core.placeholders import refuse_placeholder
from audience.storage.config import WRITER_URL_ENV
from audience.storage.db import StorageError, mask, parse_url, storage_errors

log = logging.getLogger(__name__)

ATTRIBUTES = ("LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS")
# Lower-case SQL identifiers only: the name goes into a URL and into DDL.
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: table -> privileges; the sink writes stores, cameras, visits; purge deletes visits;
#: `dashboards shares` reads the views' settings and replaces the share estimates.
GRANTS = {
    "alembic_version": "SELECT",
    "stores": "SELECT, INSERT",
    "cameras": "SELECT, INSERT",
    "visits": "SELECT, INSERT, UPDATE, DELETE",
    "report_settings": "SELECT",
    "store_utc_offsets": "SELECT",
    "share_estimates": "SELECT, INSERT, DELETE",
}
_PLACEHOLDER_HINT = f"the writer's password in {WRITER_URL_ENV} (WRITER_DB_PASSWORD in .env)"


def writer_credentials(writer_url: str, engine: Engine) -> tuple[str, str]:
    """The role name and password from the writer's URL; InputError (exit 2) when it cannot
    be the pipeline's login on the database ``engine`` migrates. Never echoes the password."""
    parsed = parse_url(writer_url)
    where = mask(parsed)
    if engine.dialect.name != "postgresql" or parsed.get_backend_name() != "postgresql":
        raise InputError(f"a writer role needs PostgreSQL: {mask(engine)} and {where} must "
                         "both be postgresql:// URLs (SQLite has no roles; leave "
                         f"{WRITER_URL_ENV} unset)")
    role = parsed.username or ""
    if not _NAME.match(role):
        raise InputError(f"{WRITER_URL_ENV} {where}: the user name must be a lower-case SQL "
                         "identifier (letters, digits, _), e.g. audience_writer")
    if role == engine.url.username:
        raise InputError(f"{WRITER_URL_ENV} {where} names the migration user {role}: the "
                         "writer must be a role of its own, e.g. audience_writer")
    if parsed.database != engine.url.database:
        raise InputError(f"{WRITER_URL_ENV} {where} is for database {parsed.database!r} but the "
                         f"migration runs on {engine.url.database!r}: use the same database")
    refuse_placeholder(parsed.password, _PLACEHOLDER_HINT)
    return role, str(parsed.password)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _refuse_existing(conn: Connection, role: str) -> None:
    """An existing role with powers or possessions is not ours to demote: refuse it."""
    row = conn.execute(text("SELECT oid, rolsuper OR rolcreaterole OR rolcreatedb "
                            "OR rolreplication OR rolbypassrls FROM pg_roles "
                            "WHERE rolname = :r"), {"r": role}).first()
    if row is None:
        return
    oid, powerful = row
    if powerful:
        raise StorageError(f"role {role} exists and may create roles or databases (or is a "
                           "superuser): pick another user name for the writer",
                           exit_code=INPUT_EXIT)
    owns = conn.execute(text(
        "SELECT EXISTS (SELECT 1 FROM pg_class WHERE relowner = :o) "
        "OR EXISTS (SELECT 1 FROM pg_namespace WHERE nspowner = :o) "
        "OR EXISTS (SELECT 1 FROM pg_proc WHERE proowner = :o) "
        "OR EXISTS (SELECT 1 FROM pg_database WHERE datdba = :o)"), {"o": oid}).scalar()
    if owns:
        raise StorageError(f"role {role} owns objects in this database or cluster: pick "
                           "another user name for the writer",
                           exit_code=INPUT_EXIT)


def _verifier(conn: Connection, role: str, password: str) -> str:
    """The SCRAM verifier, computed by libpq here: the plain password never reaches the
    server (nor its statement log)."""
    from psycopg2.extensions import encrypt_password  # type: ignore[import-untyped]

    raw = conn.connection.dbapi_connection
    return str(encrypt_password(password, role, raw, "scram-sha-256"))


def ensure_writer(engine: Engine, role: str, password: str) -> None:
    """Create or update the writer role and its grants in ``engine``'s database (idempotent).
    Run as the owner after the migration; StorageError when the user may not create roles."""
    database = str(engine.url.database)
    with storage_errors(engine, f"setting up the writer role {role} in"), \
            engine.begin() as conn:
        # One setup at a time: roles are shared by the cluster and DDL is not atomic.
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('audience writer role'))"))
        if not conn.execute(text("SELECT rolsuper OR rolcreaterole FROM pg_roles "
                                 "WHERE rolname = current_user")).scalar():
            raise StorageError(f"the --db user of {mask(engine)} may not create roles: run "
                               "`audience db upgrade` as the database owner, which needs "
                               "CREATEROLE")
        _refuse_existing(conn, role)
        conn.execute(text(f"DO $$ BEGIN CREATE ROLE {_q(role)} {ATTRIBUTES}; EXCEPTION WHEN "
                          "duplicate_object OR unique_violation THEN NULL; END $$"))
        # psycopg2 quotes the parameter client-side: DDL takes it like any literal.
        conn.execute(text(f"ALTER ROLE {_q(role)} {ATTRIBUTES} PASSWORD :verifier"),
                     {"verifier": _verifier(conn, role, password)})
        for group in conn.execute(text(
                "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
                "JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = :r"), {"r": role}
                ).scalars():
            conn.execute(text(f"REVOKE {_q(group)} FROM {_q(role)}"))
        schemas = conn.execute(text(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
            "AND nspname <> 'information_schema'")).scalars().all()
        for schema in schemas:
            for kind in ("TABLES", "SEQUENCES", "FUNCTIONS"):
                conn.execute(text(f"REVOKE ALL ON ALL {kind} IN SCHEMA {_q(schema)} "
                                  f"FROM {_q(role)}"))
            conn.execute(text(f"REVOKE ALL ON SCHEMA {_q(schema)} FROM {_q(role)}"))
        conn.execute(text(f"GRANT CONNECT ON DATABASE {_q(database)} TO {_q(role)}"))
        # Only owners create objects in public (already the default from PostgreSQL 15).
        conn.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {_q(role)}"))
        for table, privileges in GRANTS.items():
            conn.execute(text(f"GRANT {privileges} ON public.{table} TO {_q(role)}"))
        sequence = conn.execute(text("SELECT pg_get_serial_sequence('public.visits', 'id')")
                                ).scalar()
        if sequence:
            conn.execute(text(f"GRANT USAGE ON SEQUENCE {sequence} TO {_q(role)}"))
        conn.execute(text(f"ALTER ROLE {_q(role)} IN DATABASE {_q(database)} "
                          "SET search_path = public"))
    log.info("writer role %s: %s on visits in %s", role, GRANTS["visits"], mask(engine))


def drop_writer(engine: Engine, role: str) -> None:
    """Drop the writer role and its grants in this database (tests; a retired deployment)."""
    with storage_errors(engine, f"dropping the writer role {role} in"), engine.begin() as conn:
        if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first():
            conn.execute(text(f"DROP OWNED BY {_q(role)}"))
            conn.execute(text(f"DROP ROLE {_q(role)}"))
