"""Per-store audience report: a plain-text table and a self-contained HTML page.

Every number is a sum of published cells (``storage.published``): per camera and store-local
day (hour for footfall), k-suppressed with complementary suppression, over whole local days.
Hidden cells are only ever shown together, as one "suppressed" row per breakdown.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine

from audience.core.visit import AGE_BRACKETS
from audience.storage.db import storage_errors
from audience.storage.published import UNKNOWN, Published, Window, breakdown, footfall
from audience.storage.sqltime import DWELL_BANDS
from audience.storage.timezones import local_day, zone

SUPPRESSED = "suppressed"  #: the row that sums hidden cells
BANDS = tuple(label for _, label in DWELL_BANDS)


@dataclass(frozen=True, slots=True)
class Report:
    store: str
    window: Window  #: whole store-local days
    generated_at: datetime
    k: int
    footfall: Published  #: keys: local hours (naive datetimes)
    dwell: Published  #: keys: dwell band labels
    age: Published
    gender: Published
    emotion: Published

    @property
    def total(self) -> int:
        """Visits of the days (per camera) that had k or more: the published total."""
        return self.footfall.total


def build_report(engine: Engine, store: str, window: Window | None = None, k: int = 5,
                 now: datetime | None = None) -> Report:
    """Read every breakdown for one store over one connection.

    ``k`` must be at least 2 (as in ReportConfig): k=1 would publish single visitors.
    """
    if k < 2:
        raise ValueError(f"k must be >= 2 for a report, got {k}")
    window = window or Window()
    generated_at = now or datetime.now(UTC)
    with storage_errors(engine, "reading the report from"), engine.connect() as conn:
        return Report(
            store=store, window=window, generated_at=generated_at, k=k,
            footfall=footfall(conn, store, window, k, now=generated_at),
            dwell=breakdown(conn, store, window, "dwell_band", k, now=generated_at),
            age=breakdown(conn, store, window, "age_bracket", k, now=generated_at),
            gender=breakdown(conn, store, window, "gender", k, now=generated_at),
            emotion=breakdown(conn, store, window, "emotion", k, now=generated_at),
        )


# -- rows ------------------------------------------------------------------------------------

def rows(p: Published, order: tuple[str, ...] = (), unknown: bool = True,
         ) -> list[tuple[str, int]]:
    """(label, visits) in display order: a natural ``order`` if given, else biggest first;
    "unknown" listed even at 0 (every visit counts), then the suppressed cells summed."""
    counts = dict(p.counts)
    n_unknown = counts.pop(UNKNOWN, 0)
    if order:
        keys = [key for key in order if key in counts]
        keys += sorted(set(counts) - set(keys))
    else:
        keys = sorted(counts, key=lambda key: (-counts[key], key))
    out = [(key, counts[key]) for key in keys] + [(UNKNOWN, n_unknown)] * unknown
    return out + [(SUPPRESSED, p.suppressed)] if p.suppressed else out


def share(n: int, total: int) -> str:
    return f"{100 * n / total:.0f}%" if total else "-"


def _days(report: Report) -> str:
    w, tz = report.window, report.window.time_zone
    last = (w.end - timedelta(days=1)) if w.end else local_day(report.generated_at, zone(tz))
    first = f"{w.first.isoformat()}" if w.first else "the first visit"
    return f"Days: {first} to {last.isoformat()} ({tz}, whole days)"


def footer(k: int) -> str:
    """The suppression rules, as they are applied (text and HTML)."""
    return (f"Privacy: every figure adds up cells of one camera and one local day (one hour "
            f"for footfall). A cell with fewer than {k} visits is hidden. Where the hidden cells"
            f" of a day hold fewer than {k} visits together, the smallest shown cell is hidden "
            f"too, so that no hidden cell can be worked out by subtraction: a group can be "
            f"hidden although it has {k} or more visits. A day with fewer than {k} visits at a "
            f"camera is left out entirely. Hidden cells are never listed by label: they are "
            f"added up in the \"{SUPPRESSED}\" row. \"{UNKNOWN}\": visits without a face "
            f"good enough to label.")


def _table(title: str, p: Published, order: tuple[str, ...] = (), unknown: bool = True,
           ) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("group")
    table.add_column("visits", justify="right")
    table.add_column("share", justify="right")
    for label, n in rows(p, order, unknown):
        table.add_row(escape(label), str(n), share(n, p.total))
    return table


def render_table(report: Report) -> str:
    """The report as plain text (rich tables, no colour codes)."""
    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None, force_terminal=False)
    console.print(f"Store {escape(report.store)}. {_days(report)}", markup=True)
    summary = Table(title="Summary", title_justify="left", show_header=False)
    summary.add_column()
    summary.add_column(justify="right")
    summary.add_row("visits", str(report.total))
    console.print(summary)
    hours = Table(title=f"Footfall per hour ({report.window.time_zone})", title_justify="left")
    hours.add_column("hour")
    hours.add_column("visits", justify="right")
    for hour, n in sorted(report.footfall.counts.items()):
        hours.add_row(f"{hour:%Y-%m-%d %H:00}", str(n))
    if report.footfall.suppressed:
        hours.add_row(f"{SUPPRESSED} hours", str(report.footfall.suppressed))
    console.print(hours)
    console.print(_table("Dwell time", report.dwell, BANDS, unknown=False))
    console.print(_table("Age brackets", report.age, AGE_BRACKETS))
    console.print(_table("Gender", report.gender))
    console.print(_table("Emotion", report.emotion))
    console.print(footer(report.k), markup=False)
    return out.getvalue()


# -- HTML ------------------------------------------------------------------------------------

GREY = "#B0B0B0"  # unknown and suppressed bars: shares, not groups of people


def bar_png(title: str, labels: list[str], counts: list[int], rotate: bool = False,
            grey: frozenset[str] = frozenset({UNKNOWN, SUPPRESSED})) -> bytes:
    """A bar chart as PNG bytes; bars labelled in ``grey`` are drawn grey."""
    fig = Figure(figsize=(7, 3.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # explicit Agg: no display, thread-safe, no pyplot global state
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_ylabel("visits")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if labels and any(counts):
        xs = range(len(labels))
        ax.bar(xs, counts, color=[GREY if lb in grey else "#4C72B0" for lb in labels])
        step = max(1, len(labels) // 24)  # a week of hours: label every few bars only
        ax.set_xticks(list(xs)[::step], labels[::step], rotation=60 if rotate else 0,
                      ha="right" if rotate else "center", fontsize=8)
        ax.set_ylim(bottom=0, top=max(counts) * 1.15)
    else:
        ax.text(0.5, 0.5, "nothing to publish", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_xticks([])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _img(alt: str, png: bytes) -> str:
    b64 = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _hourly_series(counts: dict[datetime, int]) -> tuple[list[datetime], list[int]]:
    """Hours from first to last; hours with nothing published are 0 (under k, or none)."""
    if not counts or len(counts) > 24 * 31:
        return sorted(counts), [counts[h] for h in sorted(counts)]
    hours, t, last = [], min(counts), max(counts)
    while t <= last:
        hours.append(t)
        t += timedelta(hours=1)
    return hours, [counts.get(h, 0) for h in hours]


def _plots(report: Report) -> list[str]:
    hours, counts = _hourly_series(report.footfall.counts)
    one_day = len({h.date() for h in hours}) <= 1
    tz = report.window.time_zone
    hour_title = f"Footfall per hour ({tz}" + (f", {hours[0]:%Y-%m-%d})" if hours and one_day
                                               else ")")
    out = [_img(hour_title, bar_png(
        hour_title, [f"{h:%H:00}" if one_day else f"{h:%m-%d %H:00}" for h in hours], counts,
        rotate=True))]
    for title, p, order, rotate in (
            ("Dwell time", report.dwell, BANDS, False),
            ("Age brackets", report.age, AGE_BRACKETS, False),
            ("Gender", report.gender, (), False), ("Emotion", report.emotion, (), True)):
        labelled = rows(p, order, unknown=p is not report.dwell)
        out.append(_img(title, bar_png(title, [lb for lb, _ in labelled],
                                       [n for _, n in labelled], rotate)))
        cells = "".join(f"<td>{html.escape(lb)} {n} ({share(n, p.total)})</td>"
                        for lb, n in labelled)
        out.append(f'<table class="shares"><tr>{cells}</tr></table>')
    return out


CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }
table { border-collapse: collapse; margin-bottom: 1rem; }
td, th { padding: .2rem .8rem; border-bottom: 1px solid #ddd; text-align: left; }
img { display: block; max-width: 100%; margin: 1rem 0; }
.note { color: #555; font-size: .9rem; }
.shares td { font-size: .8rem; border: none; padding: 0 .6rem 0 0; }
"""


def write_html(report: Report, path: str | Path) -> Path:
    """Write one self-contained HTML page (plots inlined as base64 PNG); returns its path."""
    path = Path(path)
    esc = html.escape
    summary = f"<tr><th>Visits</th><td>{report.total}</td></tr>"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Audience report: {esc(report.store)}</title><style>{CSS}</style></head>
<body>
<h1>Audience report: {esc(report.store)}</h1>
<p>{esc(_days(report))}</p>
<table>{summary}</table>
{chr(10).join(_plots(report))}
<p class="note">{esc(footer(report.k))} Grey bars are shares, not groups: visits without a
label, and hidden cells added up. An hour without a bar is hidden (see above) or had no
visits.</p>
<p class="note">Generated {esc(report.generated_at.strftime("%Y-%m-%d %H:%M:%S UTC"))}.</p>
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
