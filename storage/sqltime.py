"""Dialect-specific SQL for UTC hour/day truncation of ``visits.started_at``.

Shared by the view migrations (0002, 0003) and by queries that group in SQL (segments).
Migrations import this, so an expression here must keep its meaning: changing one changes what
an old migration creates. Add a new entry instead.

On SQLite timestamps are naive-UTC text written by SQLAlchemy as ``YYYY-MM-DD HH:MM:SS.ffffff``;
the hour is rendered in that same format so it compares correctly with bound timestamps. On
PostgreSQL the truncation is done in UTC explicitly, independent of the connection's TimeZone.
"""

from __future__ import annotations

from datetime import UTC, datetime

EXPR: dict[str, dict[str, str]] = {
    "sqlite": {
        "hour": "strftime('%Y-%m-%d %H:00:00.000000', started_at)",
        "day": "date(started_at)",
        # Tie-breaks on labels must order the same on both dialects: byte order.
        "collate": "",
    },
    "postgresql": {
        "hour": "(date_trunc('hour', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')",
        "day": "CAST(started_at AT TIME ZONE 'UTC' AS DATE)",
        "collate": ' COLLATE "C"',
    },
}


def time_expr(dialect: str) -> dict[str, str]:
    """The SQL snippets for ``dialect`` ('sqlite' or 'postgresql'); others are refused."""
    if dialect not in EXPR:
        raise NotImplementedError(f"reporting SQL supports SQLite and PostgreSQL, not {dialect}")
    return EXPR[dialect]


# Store-local time (migration 0004 and storage.published). ``{ts}`` is a UTC timestamp column,
# ``{off}`` an SQL integer: the store's UTC offset in minutes at that instant. The result is
# the local wall-clock hour (a naive timestamp) or the local date.
LOCAL: dict[str, dict[str, str]] = {
    "sqlite": {
        "hour": "strftime('%Y-%m-%d %H:00:00.000000', {ts}, ({off}) || ' minutes')",
        "day": "date({ts}, ({off}) || ' minutes')",
    },
    "postgresql": {
        "hour": "date_trunc('hour', ({ts} AT TIME ZONE 'UTC') + ({off}) * interval '1 minute')",
        "day": "CAST(({ts} AT TIME ZONE 'UTC') + ({off}) * interval '1 minute' AS DATE)",
    },
}

#: Dwell bands: (exclusive upper bound in seconds, label); the last band is open-ended.
DWELL_BANDS: tuple[tuple[float | None, str], ...] = (
    (10, "0-10s"), (30, "10-30s"), (60, "30-60s"), (180, "1-3 min"), (600, "3-10 min"),
    (None, "10+ min"),
)


def local_expr(dialect: str, part: str, ts: str, off: str) -> str:
    """SQL for the store-local ``part`` ('hour' or 'day') of timestamp ``ts`` at offset ``off``."""
    time_expr(dialect)  # the same refusal of other dialects
    return LOCAL[dialect][part].format(ts=ts, off=off)


def dwell_band_expr(column: str = "dwell_s") -> str:
    """CASE expression giving the dwell band label of ``column`` (lower bound inclusive)."""
    whens = " ".join(f"WHEN {column} < {upper} THEN '{label}'"
                     for upper, label in DWELL_BANDS[:-1])
    return f"CASE {whens} ELSE '{DWELL_BANDS[-1][1]}' END"


def ts_literal(dialect: str, t: datetime) -> str:
    """A UTC instant as an SQL literal comparable with ``visits.started_at`` on ``dialect``.

    Only for instants our own code computes (offset transitions), never for user text.
    """
    u = t.astimezone(UTC)
    if dialect == "sqlite":  # naive UTC text, the format SQLAlchemy writes
        return f"'{u:%Y-%m-%d %H:%M:%S.%f}'"
    time_expr(dialect)
    return f"CAST('{u.isoformat()}' AS TIMESTAMP WITH TIME ZONE)"
