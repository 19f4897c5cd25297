"""Whose fault is a failed write: the row's (dead-letter it) or the database's (wait for it).

A visit the database rejects for its own content (a value out of range, a constraint it
breaks, text the driver cannot encode) will fail again on every retry: it belongs in the
dead-letter topic. A database that is down, read-only, full, frozen or refuses this user
refuses every row alike: dead-lettering would empty the stream into the DLQ. Such a failure is
an outage: keep the rows, pause, retry until the database is back.

Also a watchdog for writes the server never answers (a frozen host: the kernel still
acknowledges the TCP packets, so neither keepalives nor the server's own statement timeout
help): after a deadline it shuts down the sockets of the engine's connections, which turns
the blocked call into an ordinary connection error.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger(__name__)

# SQLSTATE classes and codes that say "the database", never "this row".
_OUTAGE_CLASSES = ("08", "53", "57", "58", "28", "3D", "XX")
_OUTAGE_CODES = {
    "25006",  # read_only_sql_transaction: read-only database, a standby after failover
    "42501",  # insufficient_privilege: INSERT revoked
    "40001", "40P01",  # serialization failure, deadlock: transient
    "55P03",  # lock_not_available
    "42P01",  # undefined_table: schema missing or dropped
    "25P03",  # idle_in_transaction_session_timeout
}
# SQLite reports its faults in words, not codes.
_SQLITE_OUTAGE = ("database or disk is full", "disk i/o error", "readonly database",
                  "database is locked", "unable to open database file", "no such table",
                  "disk is full", "database table is locked")


def _root(exc: BaseException) -> BaseException:
    """The driver's exception behind StorageError / SQLAlchemy wrappers."""
    seen: set[int] = set()
    cur: BaseException = exc
    while id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, DBAPIError):
            return cur
        nxt = cur.__cause__ or cur.__context__
        if nxt is None:
            break
        cur = nxt
    return cur


def is_outage(exc: BaseException) -> bool:
    """True if ``exc`` (a StorageError or the driver's error) is the database's fault."""
    root = _root(exc)
    if isinstance(root, (DisconnectionError, PoolTimeout)):
        return True
    if not isinstance(root, DBAPIError):
        # no driver error behind it: a connect that timed out, or Python refusing a value
        # (UnicodeEncodeError, ValueError) - the latter is the row's
        return isinstance(root, (OSError, TimeoutError, ConnectionError))
    if root.connection_invalidated:
        return True
    orig = root.orig
    code = getattr(orig, "pgcode", None)
    if code:
        return code in _OUTAGE_CODES or code[:2] in _OUTAGE_CLASSES
    text = str(orig).lower()
    if any(needle in text for needle in _SQLITE_OUTAGE):
        return True
    # psycopg2 without a SQLSTATE: the connection broke (server closed, timeout, refused)
    return isinstance(root, (OperationalError, InterfaceError))


class WriteWatchdog:
    """Breaks writes that block longer than ``timeout_s`` on a PostgreSQL engine.

    ``with watchdog.guard(): ...`` around a write; if it outlasts the timeout every open
    connection of the engine is shut down (they all lead to the same unanswering server), the
    driver raises a connection error, and the caller handles an ordinary outage.
    ``blocked_s()`` says how long the current write has been running (0: none), for /healthz.
    """

    def __init__(self, engine: Engine, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        dialect = getattr(getattr(engine, "dialect", None), "name", None)  # None: a test double
        self.enabled = dialect == "postgresql" and timeout_s > 0
        self._conns: weakref.WeakSet[Any] = weakref.WeakSet()
        self._started: float | None = None
        self._lock = threading.Lock()
        self.fired = 0  #: writes broken off
        if self.enabled:
            event.listen(engine, "connect", self._on_connect)

    def _on_connect(self, dbapi_conn: Any, _record: Any) -> None:
        self._conns.add(dbapi_conn)

    def blocked_s(self) -> float:
        started = self._started
        return 0.0 if started is None else time.monotonic() - started

    @contextmanager
    def guard(self) -> Iterator[None]:
        self._started = time.monotonic()
        done = threading.Event()
        timer = None
        if self.enabled:
            timer = threading.Thread(target=self._watch, args=(done,), daemon=True,
                                     name="db-write-watchdog")
            timer.start()
        try:
            yield
        finally:
            done.set()
            self._started = None

    def _watch(self, done: threading.Event) -> None:
        if done.wait(self.timeout_s):
            return
        self.fired += 1
        log.warning("a database write has not answered for %.0f s (server frozen or "
                    "unreachable): closing its connections", self.timeout_s)
        for conn in list(self._conns):
            try:
                fd = conn.fileno()
            except Exception:  # noqa: BLE001 - already closed
                continue
            try:
                # shutdown on a duplicate acts on the shared socket: the blocked recv returns
                sock = socket.socket(fileno=_dup(fd))
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                finally:
                    sock.close()
            except OSError:
                pass


def _dup(fd: int) -> int:
    import os

    return os.dup(fd)
