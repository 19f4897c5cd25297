"""Engines, migrations and readiness checks, with one-line actionable errors.

Every failure surfaces as ``StorageError``: one line saying what went wrong and what to do.
URLs in messages always have their password masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine, create_engine, event, inspect, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from audience.core.errors import INPUT_EXIT, ServiceError
from audience.core.placeholders import refuse_placeholder

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
CONNECT_TIMEOUT_S = 10
# libpq keepalives: a peer silent for 30 s is probed every 10 s, dropped after 3 misses.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
              "keepalives_count": 3}


class StorageError(ServiceError):
    """A storage failure explained in one line: what was wrong and what to do."""


def mask(url: str | URL | Engine) -> str:
    """The URL as text with any password replaced by ***."""
    if isinstance(url, Engine):
        url = url.url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return mask_text(str(url))


_CREDENTIALS = re.compile(r"^([^@]*?//|[^@/]*?:)?([^:@/]*):[^/]*@")


def mask_text(url: str) -> str:
    """Mask what looks like ``user:password@`` in a URL even SQLAlchemy cannot parse
    (``postgresql//u:pw@h/db``): a typo must not echo the password."""
    if "@" not in url:
        return url
    masked = _CREDENTIALS.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}:***@", url, count=1)
    if masked == url:  # no user:password shape: hide everything before the last @
        masked = "***@" + url.rsplit("@", 1)[1]
    return masked


def alembic_config() -> Config:
    """Alembic config built in code: no alembic.ini needed."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "storage/migrations/versions has no revisions"
    return head


def _reason(exc: BaseException) -> str:
    """The driver's error, reduced to one short line."""
    orig = getattr(exc, "orig", None) or exc
    lines = [ln.strip() for ln in str(orig).strip().splitlines() if ln.strip()]
    text = lines[0] if lines else type(orig).__name__
    # psycopg2: 'connection to server at "h", port 1 failed: Connection refused' -> the cause
    if text.startswith("connection to server"):
        text = text.rsplit(" failed: ", 1)[-1]
    return text.removeprefix("FATAL:").strip()


def _hint(engine: Engine, reason: str) -> str:
    r = reason.lower()
    if engine.dialect.name == "sqlite":
        return "check that the path exists and is writable, or pass --db"
    if "does not exist" in r and "database" in r:
        return "create the database (createdb) or pass --db"
    if "translate host" in r or "not known" in r:
        return "check the host name in the URL, or pass --db"
    if "password" in r or "authentication" in r or "role" in r:
        return "check the user and password in the URL, or pass --db"
    return "start PostgreSQL or pass --db"


@contextmanager
def storage_errors(engine: Engine, doing: str) -> Iterator[None]:
    """Turn SQLAlchemy errors into StorageError: '<doing> <url> (<reason>): <what to do>'."""
    try:
        yield
    except StorageError:
        raise
    except DBAPIError as exc:
        reason = _reason(exc)
        low = reason.lower()
        if exc.connection_invalidated or _is_connect_error(exc):
            raise StorageError(f"cannot reach the database at {mask(engine)} ({reason}): "
                               f"{_hint(engine, reason)}") from exc
        if "no such table" in low or ("relation" in low and "does not exist" in low):
            raise StorageError(f"{doing} {mask(engine)} failed ({reason}): the schema is missing, "
                               f"run `audience db upgrade --db {mask(engine)}`") from exc
        raise StorageError(f"{doing} {mask(engine)} failed ({reason})") from exc
    except SQLAlchemyError as exc:
        raise StorageError(f"{doing} {mask(engine)} failed ({_reason(exc)})") from exc


@contextmanager
def connected(bind: Engine | Connection, doing: str) -> Iterator[Connection]:
    """A connection for reading: ``bind`` itself if it is one (the caller's transaction),
    else a new one from the engine; errors become StorageError ('<doing> <url> ...')."""
    engine = bind if isinstance(bind, Engine) else bind.engine
    with storage_errors(engine, doing):
        if isinstance(bind, Connection):
            yield bind
        else:
            with bind.connect() as conn:
                yield conn


def _is_connect_error(exc: DBAPIError) -> bool:
    r = _reason(exc).lower()
    needles = ("connection refused", "could not connect", "could not translate host",
               "unable to open database file", "timeout expired", "no route to host",
               "password authentication failed", "server closed", "name or service not known",
               "connection to server")
    # a missing database or role is a connection problem; a missing table or column is not
    return any(n in r for n in needles) or bool(
        re.search(r'(database|role) "[^"]*" does not exist', r))


def parse_url(url: str) -> URL:
    """The parsed URL; a typo is StorageError with exit 2 that never echoes the password."""
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - parsed lazily: a port 'abc' raises ValueError only here
    except (ArgumentError, ValueError):
        raise StorageError(f"invalid database URL {mask_text(url)!r}: use "
                           "sqlite:///path/to/file.db or "
                           "postgresql://user:password@host:5432/dbname",
                           exit_code=INPUT_EXIT) from None
    return parsed


def refuse_placeholder_password(url: str) -> URL:
    """The parsed URL; ConfigError (exit 2) if its password is a known placeholder (a URL
    without one, for trust or peer auth, is fine)."""
    parsed = parse_url(url)
    if parsed.password is not None:
        refuse_placeholder(str(parsed.password), "the database password in DATABASE_URL "
                           "(database.url; in .env: POSTGRES_PASSWORD for migrate, "
                           "WRITER_DB_PASSWORD for infer and purge)")
    return parsed


def open_engine(url: str, *, create: bool = True, statement_timeout_s: float = 0,
                connect_timeout_s: int = CONNECT_TIMEOUT_S) -> Engine:
    """An Engine for a SQLite or PostgreSQL URL.

    SQLite: the parent folder is created (``create=False`` instead refuses a missing file, for
    read-only commands) and foreign keys are enforced. PostgreSQL: a connect timeout, so a
    wrong host fails in seconds rather than hanging; TCP keepalives, so a server that vanished
    (power cut, network partition) breaks the connection instead of leaving it open for hours;
    and, when ``statement_timeout_s`` is set, a server-side statement timeout, so a write that
    waits on a lock or a stuck disk fails instead of blocking its worker.
    """
    parsed = refuse_placeholder_password(url)
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StorageError(f"unsupported database {mask(parsed)}: use a sqlite:/// or "
                           "postgresql:// URL")
    if parsed.drivername == "postgresql":
        # The project ships psycopg2; SQLAlchemy 2.1 would otherwise default to psycopg 3.
        parsed = parsed.set(drivername="postgresql+psycopg2")
    kwargs: dict[str, object] = {}
    if backend == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            path = Path(db)
            if create:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StorageError(f"cannot create the folder of the SQLite database "
                                       f"{path} ({exc.strerror}): pick a writable place, or "
                                       "pass --db") from None
            elif not path.is_file():
                raise StorageError(f"no SQLite database at {path}: run `audience db upgrade "
                                   f"--db {mask(parsed)}` first, or pass --db")
    else:
        connect_args: dict[str, object] = {
            "connect_timeout": connect_timeout_s, **KEEPALIVES}
        if statement_timeout_s:
            connect_args["options"] = f"-c statement_timeout={int(statement_timeout_s * 1000)}"
        kwargs["connect_args"] = connect_args
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        raise StorageError(f"no driver for {mask(parsed)} ({exc}): install psycopg2-binary "
                           "or use a sqlite:/// URL") from exc
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")  # off by default in SQLite
    cur.execute("PRAGMA busy_timeout=5000")  # a concurrent writer waits instead of failing
    cur.close()


def migrate(url_or_engine: str | Engine, revision: str = "head") -> str:
    """Upgrade the schema to ``revision`` (default: the latest). Idempotent.

    Returns the revision the database is at afterwards.
    """
    owned = isinstance(url_or_engine, str)
    engine = open_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    cfg = alembic_config()
    try:
        with storage_errors(engine, "migrating"), engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            return current_revision_of(conn) or "none"
    finally:
        if owned:
            engine.dispose()


def current_revision_of(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with storage_errors(engine, "reading the schema revision of"), engine.connect() as conn:
        return current_revision_of(conn)


def ensure_ready(engine: Engine) -> str:
    """Raise StorageError unless the database is reachable and at the latest revision.

    Returns the revision.
    """
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return current
    script = ScriptDirectory.from_config(alembic_config())
    known = current is None or any(r.revision == current for r in script.walk_revisions())
    if not known:
        raise StorageError(f"database {mask(engine)} is at revision {current}, which this "
                           f"version of audience does not know (latest is {head}): "
                           "upgrade audience")
    raise StorageError(f"database {mask(engine)} is not migrated (at revision "
                       f"{current or 'none'}, need {head}): run `audience db upgrade "
                       f"--db {mask(engine)}`")


@contextmanager
def ready_engine(url: str) -> Iterator[Engine]:
    """An engine on an existing, fully migrated database, disposed of afterwards.

    The one way commands open a database they only read or change: a missing schema or an
    unreachable server is a :class:`StorageError` (exit 3), never a half-done command.
    """
    engine = open_engine(url, create=False)
    try:
        ensure_ready(engine)
        yield engine
    finally:
        engine.dispose()


def migrate_if_new(engine: Engine) -> str | None:
    """Migrate a database that holds no tables at all (a new one, e.g. made for a benchmark)
    and return the revision it is at; None when it has tables: upgrading a database in use
    stays its operator's call (`audience db upgrade`)."""
    with storage_errors(engine, "reading the tables of"):
        tables = inspect(engine).get_table_names()
    return None if tables else migrate(engine)


def prepare_database(url: str, statement_timeout_s: float = 0,
                     connect_timeout_s: int = CONNECT_TIMEOUT_S) -> Engine:
    """Open the database; the embedded SQLite default is created and migrated on first use,
    a server database must have been migrated (`audience db upgrade`) by its operator."""
    engine = open_engine(url, statement_timeout_s=statement_timeout_s,
                         connect_timeout_s=connect_timeout_s)
    if engine.dialect.name == "sqlite":
        migrate(engine)
    ensure_ready(engine)
    return engine
