"""Operator-side helpers: the known stores, a raw visit count, and duration parsing.

Nothing here is for publication: a count over an arbitrary window can be differenced with a
window an hour longer. What `audience report` and `audience segments` publish goes
through ``storage.published`` (whole store-local days, sums of k-suppressed cells), and the
dashboards read the ``report_*`` views, the same rules in SQL. ``visit_total`` is for trusted
use, such as the pipeline benches counting the rows they wrote.

Windows here are whole UTC hours: ``since`` is rounded down and ``until`` up to the hour.

Every function takes an Engine or an open Connection (to read several in one transaction).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, func, select
from sqlalchemy.orm import InstrumentedAttribute

from audience.storage.db import connected
from audience.storage.schema import StoreRow, VisitRow

Bind = Engine | Connection
_DURATION = re.compile(r"^\s*(\d+)\s*([a-z])\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


#: A mapped attribute (VisitRow.store_id) or any SQL expression.
Column = ColumnElement[Any] | InstrumentedAttribute[Any]


def window(since: datetime | None, until: datetime | None) -> tuple[datetime | None,
                                                                      datetime | None]:
    """The window rounded out to whole UTC hours."""
    lo = _floor_hour(since) if since is not None else None
    hi = None
    if until is not None:
        hi = _floor_hour(until)
        hi = hi if hi == until.astimezone(UTC) else hi + timedelta(hours=1)
    return lo, hi


def _floor_hour(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError(f"naive datetime {t.isoformat()}: pass a timezone-aware one")
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def duration(text: str | None, units: str = "mhdw") -> timedelta | None:
    """'30m', '12h', '90d', '2w' -> timedelta, or None if ``text`` is not a whole number of one
    of ``units`` (m minutes, h hours, d days, w weeks)."""
    m = _DURATION.match(text or "")
    if not m or m[2].lower() not in units:
        return None
    return timedelta(**{_UNITS[m[2].lower()]: int(m[1])})


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def _where(col_store: Column, col_time: Column, store: str,
           since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    lo, hi = window(since, until)
    conds = [col_store == store]
    if lo is not None:
        conds.append(col_time >= lo)
    if hi is not None:
        conds.append(col_time < hi)
    return conds


def _total(conn: Connection, store: str, since: datetime | None, until: datetime | None) -> int:
    where = _where(VisitRow.store_id, VisitRow.started_at, store, since, until)
    return conn.execute(select(func.count()).select_from(VisitRow).where(*where)).scalar_one()


def stores(bind: Bind) -> list[str]:
    """Known store ids, sorted."""
    with connected(bind, "listing stores in") as conn:
        return list(conn.execute(select(StoreRow.id).order_by(StoreRow.id)).scalars())


def visit_total(bind: Bind, store: str, since: datetime | None = None,
                until: datetime | None = None, k: int = 5) -> int | None:
    """Visits in the window; None when 0 < visits < k (suppressed)."""
    _check_k(k)
    with connected(bind, "counting visits in") as conn:
        n = _total(conn, store, since, until)
    return n if n == 0 or n >= k else None
