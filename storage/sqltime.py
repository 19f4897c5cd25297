"""Dialect-specific SQL for UTC hour/day truncation of ``visits.started_at``.

Shared by the view migrations (0002, 0003) and by queries that group in SQL (segments).
Migrations import this, so an expression here must keep its meaning: changing one changes what
an old migration creates. Add a new entry instead.

On SQLite timestamps are naive-UTC text written by SQLAlchemy as ``YYYY-MM-DD HH:MM:SS.ffffff``;
the hour is rendered in that same format so it compares correctly with bound timestamps. On
PostgreSQL the truncation is done in UTC explicitly, independent of the session TimeZone.
"""

from __future__ import annotations

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
