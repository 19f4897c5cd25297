"""Audience segments for marketers: k-suppressed visit counts per period and label combination.

Cells are one camera, one store-local day and one label combination (``--by``), suppressed
as every output is (``storage.published``): a cell under k is hidden, a day (per camera) under
k is left out, and the hidden cells of two- and three-label tables are chosen together for
every table the day can publish (each ``--by``, the one-label tables, the views), so that no
combination of them confines a group to fewer than k visits. Days and ISO weeks (Monday
first, labelled by their Monday) are sums of published day cells, so overlapping periods
reveal nothing by subtraction.
Hidden cells are never listed by label: each period has one "suppressed" row with their sum.
Ethnicity is deliberately not a dimension.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Connection, Engine

from audience.core.files import atomic_write, atomic_write_bytes
from audience.core.shares import Share
from audience.core.visit import AGE_BRACKETS
from audience.reports import intervals
from audience.reports.dimensions import DIMENSIONS, Period
from audience.reports.dimensions import parse_dimensions as parse_dimensions
from audience.storage.published import MOST_LABELS, UNKNOWN, Published, Window, daily

SUPPRESSED = "suppressed"
Bind = Engine | Connection


@dataclass(frozen=True, slots=True)
class SegmentRow:
    period: date  #: the store-local day, or the Monday of the ISO week
    labels: tuple[str, ...]  #: one per dimension, in --by order; empty on the suppressed row
    count: int
    suppressed: bool = False  #: the sum of the period's hidden cells, never by label


def period_start(day: date, period: Period) -> date:
    return day - timedelta(days=day.weekday()) if period is Period.week else day


def segments(bind: Bind, store: str, by: tuple[str, ...], period: Period = Period.day,
             window: Window | None = None, k: int = 5) -> list[SegmentRow]:
    """Published visits per (period, labels) for ``store``, periods oldest first; in each
    period the shown segments biggest first, then one suppressed row (if any)."""
    if k < 2:
        raise ValueError(f"k must be >= 2 for segments, got {k}")
    if not by or len(by) > MOST_LABELS or any(d not in DIMENSIONS for d in by):
        raise ValueError(f"dimensions must be 1 to 3 of {', '.join(DIMENSIONS)}, got {by}")
    periods: dict[date, Published] = defaultdict(Published)
    for day, published in daily(bind, store, window or Window(), list(by), k).items():
        periods[period_start(day, period)].add(published)
    out: list[SegmentRow] = []
    for start in sorted(periods):
        p = periods[start]
        counts = {(key if isinstance(key, tuple) else (key,)): n for key, n in p.counts.items()}
        shown = sorted(counts, key=lambda key: (-counts[key], _label_order(key)))
        out += [SegmentRow(start, key, counts[key]) for key in shown]
        if p.suppressed:
            out.append(SegmentRow(start, (), p.suppressed, suppressed=True))
    return out


_AGE_RANK = {b: i for i, b in enumerate(AGE_BRACKETS)}


def _label_order(labels: tuple[str, ...]) -> tuple[tuple[int, str], ...]:
    # Age brackets in their natural order, then other labels alphabetically, unknown last.
    return tuple((2, lb) if lb == UNKNOWN else (0, f"{_AGE_RANK[lb]:02d}") if lb in _AGE_RANK
                 else (1, lb) for lb in labels)


def cell_text(row: SegmentRow) -> str:
    return str(row.count)


ShareKey = tuple[date | None, tuple[str, ...]]


def row_shares(rows: list[SegmentRow], by: tuple[str, ...], whole: bool = False,
               ) -> dict[ShareKey, Share]:
    """Each shown, fully labelled segment's corrected share of its period's labelled shown
    visits, with its interval (``reports.intervals``): computed from the published rows only.
    ``whole``: one share per segment over all periods together (key period None)."""
    matrices = intervals.manifest_confusions()
    groups: dict[date | None, dict[tuple[str, ...], int]] = defaultdict(dict)
    for row in rows:
        if not row.suppressed:
            cells = groups[None if whole else row.period]
            cells[row.labels] = cells.get(row.labels, 0) + row.count
    out: dict[ShareKey, Share] = {}
    for period, cells in groups.items():
        est = intervals.segment_shares(cells, by, matrices)
        for labels in cells:
            share = est.get(" / ".join(labels))
            if share is not None and share.count:
                out[(period, labels)] = share
    return out


def _labels(row: SegmentRow, n_dims: int) -> tuple[str, ...]:
    return row.labels if not row.suppressed else (f"({SUPPRESSED})",) + ("",) * (n_dims - 1)


def footer(k: int) -> str:
    return (f"Cells are one camera and one store-local day. A cell under {k} visits is hidden, "
            f"and more are hidden where a subtotal shown elsewhere (a label, the day) would "
            f"give a hidden one away, chosen for every table of the day together: a segment "
            f"can be hidden although it has {k} or more visits. Hidden cells are added up in the "
            f"({SUPPRESSED}) row, never listed. A day with fewer than {k} visits at a camera is "
            f"left out. {UNKNOWN}: no face good enough to label.")


def render_table(rows: list[SegmentRow], by: tuple[str, ...], period: Period, k: int,
                 title: str) -> str:
    """The rows as a rich table, as plain text."""
    table = Table()
    table.add_column(period.value)
    for d in by:
        table.add_column(d.replace("_", " "))
    table.add_column("visits", justify="right")
    table.add_column("of labelled, corrected (90%)", justify="right")
    shares = row_shares(rows, by)
    for row in rows:
        share = shares.get((row.period, row.labels)) if not row.suppressed else None
        table.add_row(row.period.isoformat(), *map(escape, _labels(row, len(by))),
                      cell_text(row), share.text() if share else "")
    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None, force_terminal=False)
    console.print(title, markup=False, emoji=False)  # a store id is text, not markup
    console.print(table)
    console.print(intervals.segment_note(by, intervals.manifest_confusions()), markup=False)
    console.print(footer(k), markup=False)
    return out.getvalue()


def write_csv(rows: list[SegmentRow], by: tuple[str, ...], period: Period, path: Path) -> Path:
    """period, dimensions..., visits, suppressed, then the corrected share of the period's
    labelled visits and its 90% interval (fractions; empty for the suppressed row and
    segments with an unknown label); the suppressed row has empty labels.
    Written whole or not at all (a temporary file, then renamed)."""
    shares = row_shares(rows, by)

    def write(f: io.TextIOBase) -> None:
        w = csv.writer(f)
        w.writerow([period.value, *by, "visits", "suppressed", "share", "share_low",
                    "share_high"])
        for row in rows:
            labels = row.labels if not row.suppressed else ("",) * len(by)
            share = shares.get((row.period, row.labels)) if not row.suppressed else None
            est = [f"{v:.4f}" for v in (share.share, share.low, share.high)] if share else [""] * 3
            w.writerow([row.period.isoformat(), *labels, row.count, str(row.suppressed).lower(),
                        *est])

    return atomic_write(path, write, newline="")


TOP = 10  #: segments drawn by name in the chart; the rest are summed as "other segments"
GREY = "#B0B0B0"  # only the suppressed sum is grey
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#bcbd22", "#17becf", "#393b79", "#637939")  # tab10 without its grey, and two more


def figure(rows: list[SegmentRow], k: int, title: str, by: tuple[str, ...] = ()) -> Figure:
    """The rows as a stacked bar chart: one bar per period, one colour per segment (the
    biggest TOP by name, the other shown ones summed), suppressed cells summed in grey. It
    draws exactly the published figures of the table. With ``by`` (the rows' dimensions), a
    second panel shows the named segments' corrected shares with their intervals."""
    names: dict[tuple[str, ...], int] = defaultdict(int)
    for row in rows:
        if not row.suppressed:
            names[row.labels] += row.count
    top = sorted(names, key=lambda key: (-names[key], _label_order(key)))[:TOP]
    periods = sorted({row.period for row in rows})
    series: dict[str, list[int]] = {" / ".join(key): [0] * len(periods) for key in top}
    other, hidden = [0] * len(periods), [0] * len(periods)
    for row in rows:
        i = periods.index(row.period)
        if row.suppressed:
            hidden[i] += row.count
        elif row.labels in top:
            series[" / ".join(row.labels)][i] += row.count
        else:
            other[i] += row.count
    if any(other):
        series["other segments"] = other
    fig = Figure(figsize=(9, 7), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax, ax_shares = fig.subplots(2, 1, height_ratios=(2, 1))
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("visits")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    xs = list(range(len(periods)))
    bottom = [0] * len(periods)
    named = [(name, counts, COLOURS[i % len(COLOURS)])
             for i, (name, counts) in enumerate(series.items())]
    for name, counts, colour in [*named, (f"({SUPPRESSED}, under {k} or complementary)",
                                          hidden, GREY)]:
        if not any(counts):
            continue
        ax.bar(xs, counts, bottom=bottom, label=name, color=colour)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    if periods:
        ax.set_xticks(xs, [p.isoformat() for p in periods], rotation=45, ha="right", fontsize=8)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    else:
        ax.text(0.5, 0.5, "nothing to publish", ha="center", va="center",
                transform=ax.transAxes)
    _share_panel(ax_shares, rows, top, by)
    return fig


def _share_panel(ax: Axes, rows: list[SegmentRow], top: list[tuple[str, ...]],
                 by: tuple[str, ...]) -> None:
    """The named segments' corrected shares of all labelled shown visits, with 90% error
    bars (``row_shares``, whole window)."""
    shares = row_shares(rows, by, whole=True) if top and by else {}
    shown = [(key, shares[(None, key)]) for key in top if (None, key) in shares]
    ax.set_title("Share of labelled visits, whole period (corrected, 90% interval)",
                 fontsize=9)
    if not shown:
        ax.set_axis_off()
        return
    ys = list(range(len(shown)))[::-1]
    mids = [100 * s.share for _, s in shown]
    ax.errorbar(mids, ys, fmt="D", color="black", markersize=4, capsize=3,
                xerr=[[100 * (s.share - s.low) for _, s in shown],
                      [100 * (s.high - s.share) for _, s in shown]])
    ax.set_yticks(ys, [" / ".join(key) for key, _ in shown], fontsize=7)
    ax.set_xlabel("% of labelled visits")
    ax.set_xlim(left=0)


def write_png(rows: list[SegmentRow], k: int, path: Path, title: str,
              by: tuple[str, ...] = ()) -> Path:
    """The chart of ``figure`` as a PNG file, written whole or not at all."""
    buf = io.BytesIO()
    figure(rows, k, title, by).savefig(buf, format="png")
    return atomic_write_bytes(path, buf.getvalue())
