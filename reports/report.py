"""Per-store audience report: a plain-text table and a self-contained HTML page.

All numbers come from ``storage.query`` and are k-suppressed there: a group with fewer than k
visits is shown as "<k", never as its count.
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
from rich.table import Table
from sqlalchemy import Engine

from audience.core.files import atomic_write_text
from audience.storage import query
from audience.storage.db import storage_errors
from audience.storage.query import DwellSummary, Group, HourCount


@dataclass(frozen=True, slots=True)
class Report:
    store: str
    since: datetime | None  #: start of the window (rounded down to the hour); None: all time
    generated_at: datetime
    k: int
    total: int | None  #: visits in the window; None when suppressed (0 < visits < k)
    dwell: DwellSummary
    footfall: list[HourCount]
    age: list[Group]
    gender: list[Group]
    emotion: list[Group]

    @property
    def empty(self) -> bool:
        return self.total == 0


def build_report(engine: Engine, store: str, since: datetime | None = None, k: int = 5) -> Report:
    """Read every breakdown for one store over one connection.

    ``k`` must be at least 2 (as in ReportConfig): k=1 would publish single visitors.
    """
    if k < 2:
        raise ValueError(f"k must be >= 2 for a report, got {k}")
    generated_at = datetime.now(UTC)
    lo, _ = query.window(since, None)
    with storage_errors(engine, "reading the report from"), engine.connect() as conn:
        args = (conn, store, lo, None, k)
        return Report(
            store=store, since=lo, generated_at=generated_at, k=k,
            total=query.visit_total(*args), dwell=query.dwell_summary(*args),
            footfall=query.footfall_by_hour(*args), age=query.age_brackets(*args),
            gender=query.gender_split(*args), emotion=query.emotion_mix(*args),
        )


# -- text ------------------------------------------------------------------------------------

def _count(n: int | None, k: int) -> str:
    return f"<{k}" if n is None else str(n)


def _label(key: str | None) -> str:
    return "unknown" if key is None else key


def _seconds(s: float | None) -> str:
    return "-" if s is None else f"{s:.1f} s"


def _period(report: Report) -> str:
    end = f"{report.generated_at:%Y-%m-%d %H:%M} UTC"
    if report.since is None:
        return f"Period: all visits up to {end}"
    return f"Period: {report.since:%Y-%m-%d %H:%M} UTC to {end}"


def _groups_table(title: str, groups: list[Group], k: int) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("group")
    table.add_column("visits", justify="right")
    for g in groups:
        table.add_row(_label(g.key), _count(g.count, k))
    return table


def render_table(report: Report) -> str:
    """The report as plain text (rich tables, no colour codes)."""
    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None, force_terminal=False)
    k = report.k
    console.print(f"Store {report.store}. {_period(report)}", markup=False,
                  emoji=False)  # a store id is text: "[/]" is not markup, ":x:" no emoji
    summary = Table(title="Summary", title_justify="left", show_header=False)
    summary.add_column()
    summary.add_column(justify="right")
    summary.add_row("visits", _count(report.total, k))
    summary.add_row("median dwell", _seconds(report.dwell.median_s))
    summary.add_row("mean dwell", _seconds(report.dwell.mean_s))
    console.print(summary)
    hours = Table(title="Footfall per hour (UTC)", title_justify="left")
    hours.add_column("hour")
    hours.add_column("visits", justify="right")
    hours.add_column("avg dwell", justify="right")
    for h in report.footfall:
        hours.add_row(f"{h.hour:%Y-%m-%d %H:00}", _count(h.count, k), _seconds(h.avg_dwell_s))
    console.print(hours)
    for title, groups in (("Age brackets", report.age), ("Gender", report.gender),
                          ("Emotion", report.emotion)):
        console.print(_groups_table(title, groups, k))
    console.print(f"Groups with fewer than {k} visits are shown as <{k}.")
    return out.getvalue()


# -- HTML ------------------------------------------------------------------------------------

def _bar_png(title: str, labels: list[str], counts: list[int | None], k: int,
             rotate: bool = False) -> str:
    """A bar chart as base64 PNG. Suppressed bars are drawn empty and labelled "<k"."""
    fig = Figure(figsize=(7, 3.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # explicit Agg: no display, thread-safe, no pyplot global state
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_ylabel("visits")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if labels:
        xs = range(len(labels))
        heights = [c or 0 for c in counts]
        ax.bar(xs, heights, color="#4C72B0")
        for x, c in zip(xs, counts, strict=True):
            if c is None:
                ax.annotate(f"<{k}", (x, 0), ha="center", va="bottom", fontsize=8,
                            color="#888888")
        step = max(1, len(labels) // 24)  # a week of hours: label every few bars only
        ax.set_xticks(list(xs)[::step], labels[::step], rotation=60 if rotate else 0,
                      ha="right" if rotate else "center", fontsize=8)
        ax.set_ylim(bottom=0, top=max([*heights, k]) * 1.15)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(alt: str, png_b64: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png_b64}">'


def _hourly_series(footfall: list[HourCount]) -> tuple[list[datetime], list[int | None]]:
    """Hours from first to last with empty hours as 0, so gaps in footfall stay visible."""
    if not footfall or len(footfall) > 24 * 31:
        return [h.hour for h in footfall], [h.count for h in footfall]
    by_hour = {h.hour: h.count for h in footfall}
    hours, t = [], footfall[0].hour
    while t <= footfall[-1].hour:
        hours.append(t)
        t += timedelta(hours=1)
    return hours, [by_hour.get(t, 0) for t in hours]


def _plots(report: Report) -> list[str]:
    k = report.k
    hours, counts = _hourly_series(report.footfall)
    one_day = len({h.date() for h in hours}) <= 1
    hour_title = "Footfall per hour (UTC" + (f", {hours[0]:%Y-%m-%d})" if hours and one_day
                                             else ")")
    charts = [
        (hour_title, [f"{h:%H:00}" if one_day else f"{h:%m-%d %H:00}" for h in hours], counts,
         True),
        ("Age brackets", [_label(g.key) for g in report.age], [g.count for g in report.age],
         False),
        ("Gender", [_label(g.key) for g in report.gender], [g.count for g in report.gender],
         False),
        ("Emotion", [_label(g.key) for g in report.emotion], [g.count for g in report.emotion],
         True),
    ]
    return [_img(title, _bar_png(title, labels, counts, k, rotate))
            for title, labels, counts, rotate in charts]


CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }
table { border-collapse: collapse; margin-bottom: 1rem; }
td, th { padding: .2rem .8rem; border-bottom: 1px solid #ddd; text-align: left; }
img { display: block; max-width: 100%; margin: 1rem 0; }
.note { color: #555; font-size: .9rem; }
"""


def write_html(report: Report, path: str | Path) -> Path:
    """Write one self-contained HTML page (plots inlined as base64 PNG); returns its path."""
    path = Path(path)
    k = report.k
    esc = html.escape
    rows = [("Visits", _count(report.total, k)),
            ("Median dwell", _seconds(report.dwell.median_s)),
            ("Mean dwell", _seconds(report.dwell.mean_s))]
    summary = "".join(f"<tr><th>{esc(a)}</th><td>{esc(b)}</td></tr>" for a, b in rows)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Audience report: {esc(report.store)}</title><style>{CSS}</style></head>
<body>
<h1>Audience report: {esc(report.store)}</h1>
<p>{esc(_period(report))}</p>
<table>{summary}</table>
{chr(10).join(_plots(report))}
<p class="note">Privacy: these figures are anonymous aggregates. Any group with fewer than
{k} visits is suppressed and shown as &lt;{k} (an empty bar), so that no small group, and no
individual, can be singled out; if the whole store had fewer than {k} visits in the period,
every breakdown is suppressed.</p>
<p class="note">Generated {esc(report.generated_at.strftime("%Y-%m-%d %H:%M:%S UTC"))}.</p>
</body></html>
"""
    atomic_write_text(path, page)  # whole or not at all: no 0-byte page on a full disk
    return path
