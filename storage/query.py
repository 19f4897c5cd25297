"""Reporting queries over arbitrary UTC windows, with k-anonymity suppression per window.

Not for publication: a window that moves by an hour moves these figures by the visitors of
that hour (issue 14). Everything `audience report`, `audience segments` and the dashboards
publish goes through ``storage.published`` (whole store-local days, sums of suppressed cells).
What stays here is for trusted, operator-side use and ``stores()``.

Any group (one row of a breakdown: an hour, an age bracket, a gender, an emotion) with fewer
than ``k`` visits is returned with ``count=None`` and ``suppressed=True``; its exact count is
never returned. Where exactly one group would be hidden, the smallest shown group is hidden
too (secondary suppression): otherwise total minus the shown groups would reveal it. If the
whole store has fewer than ``k`` visits in the window, every row of
every breakdown is suppressed. An empty window is not suppressed: it has count 0 and no rows.

Windows are whole UTC hours, the resolution of ``visits_hourly``: ``since`` is rounded down and
``until`` up to the hour, so footfall and the other breakdowns always count the same visits.

Sources: footfall reads the ``visits_hourly`` view; the other breakdowns group the ``visits``
table directly because the daily views (``visits_daily_age``, ``visits_daily_gender``,
``visits_daily_emotion``) cannot honour an hour-aligned window. Those views, like
``visits_hourly``, hold raw counts for trusted dashboards: they are not suppressed (the
``report_*`` views of migration 0003 are, in SQL, for untrusted dashboards).

Every function takes an Engine or an open Connection (to read several in one transaction).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, func, select
from sqlalchemy.orm import InstrumentedAttribute

from audience.core.visit import AGE_BRACKETS
from audience.storage.db import connected
from audience.storage.schema import StoreRow, VisitRow, visits_hourly

Bind = Engine | Connection
_DURATION = re.compile(r"^\s*(\d+)\s*([a-z])\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True, slots=True)
class Group:
    key: str | None  #: None: the label is unknown (no classifiable crop)
    count: int | None  #: None when suppressed
    suppressed: bool = False


@dataclass(frozen=True, slots=True)
class HourCount:
    hour: datetime  #: start of the UTC hour
    count: int | None
    avg_dwell_s: float | None
    suppressed: bool = False


@dataclass(frozen=True, slots=True)
class DwellSummary:
    count: int | None
    median_s: float | None
    mean_s: float | None
    suppressed: bool = False
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


def hidden_keys(counts: Sequence[tuple[Any, int]], k: int, small_store: bool) -> set[Any]:
    """Keys to suppress: every group under k (primary), and where exactly one group is hidden
    the smallest shown one too (secondary), so it cannot be recovered as total minus the rest.

    ``small_store``: the whole population is under k, so every key is hidden. Ties between
    equally small shown groups are broken by the label in byte order, an unknown (None) label
    reading 'unknown': exactly as the report_* views break them in SQL.
    """
    if small_store:
        return {key for key, _ in counts}
    hidden = {key for key, n in counts if n < k}
    if len(hidden) == 1:
        shown = sorted((n, _label(key)) for key, n in counts if key not in hidden)
        if shown:
            hidden |= {key for key, n in counts if (n, _label(key)) == shown[0]}
    return hidden


def _label(key: Any) -> str:
    return "unknown" if key is None else str(key)


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


def footfall_by_hour(bind: Bind, store: str, since: datetime | None = None,
                     until: datetime | None = None, k: int = 5) -> list[HourCount]:
    """Visits per UTC hour (all cameras of the store), from the visits_hourly view."""
    _check_k(k)
    v = visits_hourly.c
    n = func.sum(v.visits)
    stmt = (select(v.hour, n, func.sum(v.visits * v.avg_dwell_s) / n)
            .where(*_where(v.store_id, v.hour, store, since, until))
            .group_by(v.hour).order_by(v.hour))
    with connected(bind, "reading footfall from") as conn:
        small_store = _total(conn, store, since, until) < k
        rows = conn.execute(stmt).all()
    hidden = hidden_keys([(hour, count) for hour, count, _ in rows], k, small_store)
    out = []
    for hour, count, avg in rows:
        if hour in hidden:
            out.append(HourCount(hour, None, None, suppressed=True))
        else:
            out.append(HourCount(hour, int(count), float(avg)))
    return out


def _breakdown(bind: Bind, column: Column, store: str, since: datetime | None,
               until: datetime | None, k: int, order: Sequence[str] = ()) -> list[Group]:
    _check_k(k)
    where = _where(VisitRow.store_id, VisitRow.started_at, store, since, until)
    stmt = select(column, func.count()).where(*where).group_by(column)
    with connected(bind, f"reading {column.key} counts from") as conn:
        small_store = _total(conn, store, since, until) < k
        rows = conn.execute(stmt).all()
    drop = hidden_keys([(key, n) for key, n in rows], k, small_store)
    shown = [Group(key, int(n)) for key, n in rows if key not in drop]
    hidden = [Group(key, None, suppressed=True) for key, n in rows if key in drop]
    rank = {key: i for i, key in enumerate(order)}
    if order:  # a natural order (age brackets), unknown last
        shown.sort(key=lambda g: (rank.get(g.key, len(rank)) if g.key else len(rank) + 1))
    else:  # biggest first
        shown.sort(key=lambda g: (-(g.count or 0), g.key or "~"))
    # Suppressed rows sort by label only, so their position leaks nothing about their size.
    hidden.sort(key=lambda g: (rank.get(g.key, len(rank)) if g.key else len(rank) + 1,
                               g.key or "~"))
    return shown + hidden


def age_brackets(bind: Bind, store: str, since: datetime | None = None,
                 until: datetime | None = None, k: int = 5) -> list[Group]:
    """Visits per age bracket, youngest first (key None: age unknown)."""
    return _breakdown(bind, VisitRow.age_bracket, store, since, until, k, AGE_BRACKETS)


def gender_split(bind: Bind, store: str, since: datetime | None = None,
                 until: datetime | None = None, k: int = 5) -> list[Group]:
    """Visits per gender label, biggest first (key None: unknown)."""
    return _breakdown(bind, VisitRow.gender, store, since, until, k)


def emotion_mix(bind: Bind, store: str, since: datetime | None = None,
                until: datetime | None = None, k: int = 5) -> list[Group]:
    """Visits per dominant emotion, biggest first (key None: unknown)."""
    return _breakdown(bind, VisitRow.emotion, store, since, until, k)


def dwell_summary(bind: Bind, store: str, since: datetime | None = None,
                  until: datetime | None = None, k: int = 5) -> DwellSummary:
    """Visit count, median and mean dwell in seconds; suppressed when 0 < count < k."""
    _check_k(k)
    where = _where(VisitRow.store_id, VisitRow.started_at, store, since, until)
    with connected(bind, "reading dwell times from") as conn:
        n, mean = conn.execute(
            select(func.count(), func.avg(VisitRow.dwell_s)).where(*where)).one()
        if n == 0:
            return DwellSummary(0, None, None)
        if n < k:
            return DwellSummary(None, None, None, suppressed=True)
        # Portable median (SQLite has no percentile_cont): the middle one or two values.
        middle = conn.execute(
            select(VisitRow.dwell_s).where(*where).order_by(VisitRow.dwell_s)
            .offset((n - 1) // 2).limit(2 - n % 2)).scalars().all()
    return DwellSummary(int(n), sum(middle) / len(middle), float(mean))
