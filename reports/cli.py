"""`audience report` (a store's k-suppressed summary and HTML page) and `audience segments`."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from audience.core.files import check_output
from audience.core.ids import is_valid_id
from audience.reports.config import ReportConfig
from audience.reports.report import build_report, render_table, write_html
from audience.reports.segments import DIMENSIONS, Period, parse_dimensions, segments, write_csv
from audience.reports.segments import render_table as render_segments
from audience.storage import query
from audience.storage.cli import DEFAULT_URL, DbUrl
from audience.storage.db import ready_engine

_DEFAULTS = ReportConfig()


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """'7d' / '12h' / '30m' / '2w' back from now, or an ISO date/datetime (naive = UTC)."""
    if text is None or not text.strip():
        return None
    now = now or datetime.now(UTC)
    try:
        if (back := query.duration(text)) is not None:
            return now - back
        t = datetime.fromisoformat(text.strip())
    except OverflowError:  # 9999999d: before the year 1
        raise typer.BadParameter(f"{text[:40]!r} reaches back before the year 1: use a "
                                 "shorter duration or omit --since for all visits") from None
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither a duration (7d, 12h, 30m, 2w) nor an ISO date "
            "(2024-05-01 or 2024-05-01T08:00)") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def report_file_name(store: str) -> str:
    """``report-<store>.html``, one per store: an id by the id rule is its own name; any
    other text (``a/b``, ``a b``, non-ASCII, 5,000 characters) is cut to a readable stem
    plus a hash of the whole, so two stores never share a file and the name stays short."""
    if is_valid_id(store) and not store.startswith("."):
        return f"report-{store}.html"
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", store)[:40].strip("_") or "store"
    digest = hashlib.sha256(store.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"report-{stem}-{digest}.html"


# Options `report` and `segments` share.
Store = Annotated[str, typer.Option("--store", help="Store id to report on.")]
Since = Annotated[str | None, typer.Option(
    "--since", help="Start of the period: a duration back from now (7d, 12h) or an ISO "
    "date/datetime in UTC. Default: all visits.")]
K = Annotated[int, typer.Option("--k", min=2, help="Suppress any group with fewer than k "
                                "visits.")]


def report(
    store: Store,
    since: Since = None,
    db: DbUrl = DEFAULT_URL,
    k: K = _DEFAULTS.k,
    out: Annotated[Path | None, typer.Option(
        "--out", help=f"HTML output path. Default: {_DEFAULTS.out_dir}/report-<store>.html")]
    = None,
) -> None:
    """Print a store's audience summary and write it as a self-contained HTML page."""
    start = parse_since(since)
    if out is not None:
        check_output(out)  # before the work: a folder is refused, nothing printed
    with ready_engine(db) as engine:
        rep = build_report(engine, store, since=start, k=k)
        known = query.stores(engine) if rep.empty else []
    if rep.empty:
        where = f"since {rep.since:%Y-%m-%d %H:%M} UTC" if rep.since else "in the database"
        hint = f" (stores with data: {', '.join(known)})" if known else ""
        typer.echo(f"no visits for store {store!r} {where}{hint}; nothing to report")
        return
    typer.echo(render_table(rep))
    path = write_html(rep, out or Path(_DEFAULTS.out_dir) / report_file_name(store))
    typer.echo(f"HTML report: {path}")


def segments_command(
    by: Annotated[str, typer.Option(
        "--by", metavar="DIMS",
        help=f"Comma-separated dimensions, 1 to 3 of: {', '.join(DIMENSIONS)}. "
        "Example: `--by age_bracket,gender`.")],
    store: Store,
    period: Annotated[Period, typer.Option(
        "--period", help="`day` (UTC) or `week` (ISO, Monday first; labelled by its Monday).")]
    = Period.day,
    since: Since = None,
    db: DbUrl = DEFAULT_URL,
    k: K = _DEFAULTS.k,
    csv_path: Annotated[Path | None, typer.Option(
        "--csv", help="Also write the rows as CSV: period, dimensions, visits, suppressed "
        "(visits empty where suppressed).")] = None,
) -> None:
    """Visits per period and audience segment (age bracket, gender, emotion) for marketers.

    Counts are **k-suppressed** per period: a segment with fewer than k visits prints as `<k`;
    where exactly one is hidden, the smallest shown one is hidden too; a period with fewer
    than k visits in all is hidden entirely. Hidden rows are listed last, by label only.
    Unknown labels read `unknown`. Ethnicity is not offered.

    Example: `audience segments --by age_bracket,gender --period week --store store-1 --since 8w`
    """
    try:
        dims = parse_dimensions(by)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--by") from None
    start = parse_since(since)
    if csv_path is not None:
        check_output(csv_path)
    with ready_engine(db) as engine:
        rows = segments(engine, store, dims, period, since=start, k=k)
        known = query.stores(engine) if not rows else []
    if csv_path is not None:
        write_csv(rows, dims, period, csv_path)
    lo, _ = query.window(start, None)
    where = f"since {lo:%Y-%m-%d %H:%M} UTC" if lo else "in the database"
    if not rows:
        hint = f" (stores with data: {', '.join(known)})" if known else ""
        typer.echo(f"no visits for store {store!r} {where}{hint}; no segments to show")
    else:
        title = f"Store {store}: visits per {period.value} by {', '.join(dims)}, {where}"
        typer.echo(render_segments(rows, dims, period, k, title), nl=False)
    if csv_path is not None:
        typer.echo(f"CSV: {csv_path}")


def register(app: typer.Typer) -> None:
    """Add the `report` and `segments` commands to the main `audience` app."""
    app.command("report")(report)
    app.command("segments")(segments_command)
