"""Buffered, idempotent writer of visits (quix-streams style sink).

    with VisitSink(engine, batch_size=50) as sink:
        for visit in visits:
            sink.add(visit)       # flushes by itself every batch_size visits
    # clean exit: the rest is flushed

A flush is one transaction: store and camera rows are created if missing, then the visits are
upserted on (store_id, camera_id, track_id), so replaying a stream never duplicates rows. If
anything fails the transaction rolls back, nothing of the batch is written, the buffer is kept
for a retry and StorageError is raised.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection, Engine, Insert
from sqlalchemy.dialects import postgresql, sqlite

from audience.core.visit import Visit
from audience.storage.db import StorageError, storage_errors
from audience.storage.schema import VISIT_COLUMNS, CameraRow, StoreRow, VisitRow

KEY = ("store_id", "camera_id", "track_id")
# Both dialects' inserts have on_conflict_do_nothing/do_update (the generic Insert has not).
_INSERT: dict[str, Callable[..., Any]] = {"sqlite": sqlite.insert,
                                          "postgresql": postgresql.insert}


class VisitSink:
    def __init__(self, engine: Engine, batch_size: int = 50) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if engine.dialect.name not in _INSERT:
            raise StorageError(f"the visit sink supports SQLite and PostgreSQL, not "
                               f"{engine.dialect.name}: use a sqlite:/// or postgresql:// URL")
        self.engine = engine
        self.batch_size = batch_size
        self._insert = _INSERT[engine.dialect.name]
        self._buffer: list[Visit] = []
        self.written = 0  #: visits written (inserted or updated) over the sink's life
        self.flushes = 0  #: successful flushes that wrote something

    @property
    def pending(self) -> int:
        """Visits buffered and not yet written."""
        return len(self._buffer)

    def add(self, visit: Visit) -> int:
        """Buffer a visit; flush when the buffer is full. Returns the visits written now."""
        self._buffer.append(visit)
        return self.flush() if len(self._buffer) >= self.batch_size else 0

    def flush(self) -> int:
        """Write the buffer in one transaction. Returns the number of visits written."""
        if not self._buffer:
            return 0
        rows = _dedupe([_row(v) for v in self._buffer])
        try:
            with storage_errors(self.engine, f"writing {len(rows)} visits to"):
                with self.engine.begin() as conn:
                    self._write(conn, rows)
        except StorageError as err:
            raise StorageError(f"{err}; nothing was written, the {len(self._buffer)} visits "
                               "stay buffered for a retry") from err.__cause__
        # Only now, after the commit: a failed flush keeps every visit for the retry.
        self._buffer.clear()
        self.written += len(rows)
        self.flushes += 1
        return len(rows)

    def _write(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        # key=str: a bad visit's None id must reach the database (-> clear error), not sorted()
        stores = [{"id": s} for s in sorted({r["store_id"] for r in rows}, key=str)]
        cameras = [{"store_id": s, "camera_id": c}
                   for s, c in sorted({(r["store_id"], r["camera_id"]) for r in rows}, key=str)]
        conn.execute(self._insert(StoreRow).on_conflict_do_nothing(), stores)
        conn.execute(self._insert(CameraRow).on_conflict_do_nothing(), cameras)
        conn.execute(self._upsert(), rows)

    def drop_pending(self) -> list[Visit]:
        """Empty the buffer without writing and return what was in it (e.g. to dead-letter a
        batch that keeps failing)."""
        dropped, self._buffer = self._buffer, []
        return dropped

    def _upsert(self) -> Insert:
        stmt: Any = self._insert(VisitRow)
        changed = {c: stmt.excluded[c] for c in VISIT_COLUMNS if c not in KEY}
        return stmt.on_conflict_do_update(index_elements=list(KEY), set_=changed)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # On an exception the buffer is left alone: flushing could mask the original error.
        if exc_type is None:
            self.flush()


def _row(visit: Visit) -> dict[str, Any]:
    row = dataclasses.asdict(visit)
    return {c: row[c] for c in VISIT_COLUMNS}


def _dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # PostgreSQL refuses an upsert that touches the same row twice in one statement; the last
    # version of a visit wins, as it would across two batches.
    by_key = {tuple(r[k] for k in KEY): r for r in rows}
    return list(by_key.values())
