"""Store-local time: IANA zone names, UTC offset periods, local day boundaries.

Stored times stay UTC. Reports bucket visits by the store's local hour and day; SQL does the
bucketing with the store's UTC offset in minutes, which changes at daylight-saving
transitions, so a zone is turned into offset periods ``[valid_from, valid_until) -> minutes``
here (from Python's tz database) and handed to SQL: as rows of ``store_utc_offsets`` for the
views (SQLite has no time zones; PostgreSQL reads the same rows, so both agree), or inline for
``audience report`` and ``audience segments``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: The span the views know offsets for; outside it a store's visits are bucketed in UTC.
TABLE_SPAN = (datetime(1990, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def zone(name: str) -> ZoneInfo:
    """The zone for an IANA name ('Europe/Berlin', 'UTC'); ValueError saying what is valid."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as "
                         "'Europe/Berlin', 'America/New_York' or 'UTC'") from None


def utc_offset_min(tz: ZoneInfo, t: datetime) -> int:
    """The zone's UTC offset in minutes at the instant ``t``."""
    off = t.astimezone(tz).utcoffset()
    assert off is not None
    return int(off.total_seconds() // 60)


_offset_min = utc_offset_min


@lru_cache(maxsize=64)  # a report asks for the same window once per breakdown
def offset_periods(tz: ZoneInfo, lo: datetime, hi: datetime) -> list[tuple[datetime, datetime,
                                                                           int]]:
    """Consecutive ``(valid_from, valid_until, offset_minutes)`` covering ``[lo, hi)`` (UTC).

    Transitions are found day by day and then to the minute by bisection (no zone changes its
    offset twice within a day).
    """
    out: list[tuple[datetime, datetime, int]] = []
    start, off = lo, _offset_min(tz, lo)
    t = lo
    while t < hi:
        nxt = min(t + timedelta(days=1), hi)
        if _offset_min(tz, nxt) != off or nxt == hi:
            a, b = t, nxt  # off holds at a; find the first minute where it no longer does
            while b - a > timedelta(minutes=1):
                mid = a + (b - a) / 2
                mid = mid.replace(second=0, microsecond=0)
                if mid <= a:
                    mid = a + timedelta(minutes=1)
                a, b = (mid, b) if _offset_min(tz, mid) == off else (a, mid)
            if _offset_min(tz, b) != off:
                out.append((start, b, off))
                start, off = b, _offset_min(tz, b)
        t = nxt
    out.append((start, hi, off))
    return [p for p in out if p[0] < p[1]]


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant at which the store-local ``day`` begins."""
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def local_day(t: datetime, tz: ZoneInfo) -> date:
    """The store-local date of the instant ``t`` (timezone-aware)."""
    return t.astimezone(tz).date()
