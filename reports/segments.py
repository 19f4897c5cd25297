"""Audience segments for marketers: k-suppressed visit counts per period and label combination.

Visits of one store are counted in SQL per UTC day and label combination (``--by``), then
rolled up in Python into days or ISO weeks (Monday first; a week is labelled by its Monday).
Suppression is the one ``storage.query`` applies, per period: cells under k are hidden, where
exactly one is hidden the smallest shown one is hidden too, and a period with fewer than k visits
in all is hidden entirely. Hidden cells carry no count and sort by label only, so their
position says nothing about their size. Ethnicity is deliberately not a dimension.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection, Date, Engine, func, literal_column, select

from audience.core.files import atomic_write
from audience.core.visit import AGE_BRACKETS
from audience.storage.db import connected
from audience.storage.query import hidden_keys, window
from audience.storage.schema import VisitRow
from audience.storage.sqltime import time_expr

DIMENSIONS = ("age_bracket", "gender", "emotion")
UNKNOWN = "unknown"
SEP = "\x1f"  # joins labels into one text key; never part of a label
Bind = Engine | Connection


class Period(StrEnum):
    day = "day"
    week = "week"


@dataclass(frozen=True, slots=True)
class SegmentRow:
    period: date  #: the UTC day, or the Monday of the ISO week
    labels: tuple[str, ...]  #: one per dimension, in --by order; NULL reads 'unknown'
    count: int | None  #: None when suppressed
    suppressed: bool = False


def parse_dimensions(text: str) -> tuple[str, ...]:
    """'age_bracket,gender' -> ('age_bracket', 'gender'); ValueError naming the allowed ones."""
    dims = tuple(d.strip() for d in text.split(",") if d.strip())
    allowed = ", ".join(DIMENSIONS)
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown dimension {', '.join(map(repr, unknown))}: choose 1 to 3 of "
                         f"{allowed}")
    if not dims or len(set(dims)) != len(dims):
        raise ValueError(f"give 1 to 3 distinct dimensions from {allowed}, comma-separated")
    return dims


def period_start(day: date, period: Period) -> date:
    return day - timedelta(days=day.weekday()) if period is Period.week else day


def segments(bind: Bind, store: str, by: tuple[str, ...], period: Period = Period.day,
             since: datetime | None = None, k: int = 5) -> list[SegmentRow]:
    """Visits per (period, labels) for ``store``, k-suppressed; periods oldest first.

    ``since`` is rounded down to the hour, like ``audience report``.
    """
    if k < 2:
        raise ValueError(f"k must be >= 2 for segments, got {k}")
    if not by or any(d not in DIMENSIONS for d in by):
        raise ValueError(f"dimensions must be 1 to 3 of {', '.join(DIMENSIONS)}, got {by}")
    engine = bind if isinstance(bind, Engine) else bind.engine
    day = literal_column(time_expr(engine.dialect.name)["day"], Date)
    cols = [VisitRow.__table__.c[d] for d in by]
    lo, _ = window(since, None)
    stmt = (select(day, *cols, func.count()).where(VisitRow.store_id == store)
            .group_by(day, *cols))
    if lo is not None:
        stmt = stmt.where(VisitRow.started_at >= lo)
    with connected(bind, "reading segments from") as conn:
        rows = conn.execute(stmt).all()

    cells: dict[date, dict[tuple[str, ...], int]] = defaultdict(lambda: defaultdict(int))
    for d, *labels, n in rows:
        d = date.fromisoformat(d) if isinstance(d, str) else d
        cells[period_start(d, period)][tuple(lb or UNKNOWN for lb in labels)] += n

    out: list[SegmentRow] = []
    for start in sorted(cells):
        counts = cells[start]
        # Keys joined to text: hidden_keys breaks ties by str(key), i.e. by the labels.
        by_text = {SEP.join(key): key for key in counts}
        hidden = {by_text[t] for t in hidden_keys(
            [(SEP.join(key), n) for key, n in counts.items()], k,
            small_store=sum(counts.values()) < k)}
        shown = sorted((key for key in counts if key not in hidden),
                       key=lambda key: (-counts[key], _label_order(key)))
        out += [SegmentRow(start, key, counts[key]) for key in shown]
        out += [SegmentRow(start, key, None, suppressed=True)
                for key in sorted(hidden, key=_label_order)]
    return out


_AGE_RANK = {b: i for i, b in enumerate(AGE_BRACKETS)}


def _label_order(labels: tuple[str, ...]) -> tuple[tuple[int, str], ...]:
    # Age brackets in their natural order, then other labels alphabetically, unknown last.
    return tuple((2, lb) if lb == UNKNOWN else (0, f"{_AGE_RANK[lb]:02d}") if lb in _AGE_RANK
                 else (1, lb) for lb in labels)


def cell_text(row: SegmentRow, k: int) -> str:
    return f"<{k}" if row.suppressed else str(row.count)


def render_table(rows: list[SegmentRow], by: tuple[str, ...], period: Period, k: int,
                 title: str) -> str:
    """The rows as a rich table, as plain text."""
    table = Table()
    table.add_column(period.value)
    for d in by:
        table.add_column(d.replace("_", " "))
    table.add_column("visits", justify="right")
    for row in rows:
        table.add_row(row.period.isoformat(), *row.labels, cell_text(row, k))
    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None, force_terminal=False)
    console.print(title, markup=False, emoji=False)  # a store id is text, not markup
    console.print(table)
    console.print(f"<{k}: fewer than {k} visits, or hidden so that a smaller segment cannot be "
                  "worked out from the others.")
    return out.getvalue()


def write_csv(rows: list[SegmentRow], by: tuple[str, ...], period: Period, path: Path) -> Path:
    """period, dimensions..., visits, suppressed; a suppressed row has an empty visits cell.
    Written whole or not at all (a temporary file, then renamed)."""
    def write(f: io.TextIOBase) -> None:
        w = csv.writer(f)
        w.writerow([period.value, *by, "visits", "suppressed"])
        for row in rows:
            count = "" if row.count is None else row.count
            w.writerow([row.period.isoformat(), *row.labels, count, str(row.suppressed).lower()])

    return atomic_write(path, write, newline="")
