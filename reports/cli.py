"""`audience report` (a store's k-suppressed summary and HTML page) and `audience segments`."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Protocol
from zoneinfo import ZoneInfo

import typer

from audience.core.errors import InputError
from audience.core.files import check_output
from audience.core.ids import is_valid_id
from audience.reports.config import ReportConfig
from audience.reports.dimensions import DIMENSIONS, Period, parse_dimensions
from audience.storage.cli import DEFAULT_URL, DbUrl
from audience.storage.timezones import day_start, local_day, zone

if TYPE_CHECKING:  # the commands load the database, plotting and LP stacks when they run
    from sqlalchemy import Engine

    from audience.storage.published import Window

_DEFAULTS = ReportConfig()


class ReportSettings(Protocol):
    """The section of the app config the reports read."""

    report: ReportConfig


#: The app's loader: config file + environment + these command-line values.
Load = Callable[[Path | None, dict[str, dict[str, object]]], ReportSettings]
_load: Load | None = None  # set by register(); None: defaults (library use, tests)


def parse_since(text: str | None, now: datetime | None = None,
                tz: tzinfo = UTC) -> datetime | None:
    """'7d' / '12h' / '30m' / '2w' back from now, or an ISO date/datetime (naive = in ``tz``,
    the store's time zone)."""
    from audience.storage.query import duration

    if text is None or not text.strip():
        return None
    now = now or datetime.now(UTC)
    try:
        if (back := duration(text)) is not None:
            return now - back
        t = datetime.fromisoformat(text.strip())
    except OverflowError:  # 9999999d: before the year 1
        raise typer.BadParameter(f"{text[:40]!r} reaches back before the year 1: use a "
                                 "shorter duration or omit --since for all visits") from None
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither a duration (7d, 12h, 30m, 2w) nor an ISO date "
            "(2024-05-01 or 2024-05-01T08:00)") from None
    return t.replace(tzinfo=tz) if t.tzinfo is None else t


def settings(config: Path | None) -> ReportConfig:
    """The report section of the config file (+ environment); defaults without a loader."""
    return _load(config, {}).report if _load is not None else _DEFAULTS


def _k(cfg: ReportConfig, requested: int | None) -> int:
    k, note = cfg.effective_k(requested)
    if note:
        typer.echo(f"note: {note}", err=True)
    return k


def store_zone(cfg: ReportConfig, store: str, engine: Engine) -> str:
    """The store's time zone: report.timezones, else the one the views use (written into the
    database by `dashboards provision`), else UTC. Outputs bucketed in two zones would be two
    partitions of the same visits, which could be subtracted: a mismatch is said on stderr."""
    from audience.storage.report_settings import read_store_time_zones

    configured = cfg.timezones.get(store)
    stored = read_store_time_zones(engine).get(store)
    if configured and configured != (stored or "UTC"):
        views = f"the report_* views in {stored}" if stored else \
            "the report_* views in UTC (no zone stored for it)"
        typer.echo(f"warning: report.timezones puts store {store!r} in {configured}, {views}: "
                   "two zones cut days differently, so a visit near midnight is in one day here"
                   " and in another there, and the two can be subtracted. Run `audience "
                   "dashboards provision` with this config so that every output uses one zone,"
                   " before publishing either", err=True)
    return configured or stored or "UTC"


def _day(text: str | None, option: str, tz: ZoneInfo) -> date | None:
    """The store-local day that holds ``text`` (see parse_since); a time inside a day is
    snapped to that day's start, said on stderr (durations snap silently)."""
    from audience.storage.query import duration

    t = parse_since(text, tz=tz)
    if t is None:
        return None
    day = local_day(t, tz)
    if day_start(day, tz) != t.astimezone(UTC) and duration(text) is None:
        typer.echo(f"note: {option} {text} snapped to {day.isoformat()} 00:00 {tz.key}: "
                   "reports cover whole store-local days", err=True)
    return day


def window_since(since: str | None, time_zone: str, until: str | None = None) -> Window:
    """The report window: whole store-local days, from the day that holds ``since`` up to
    (excluding) the day that holds ``until``. Windows that differ by part of a day would differ
    by a few visitors, who could be worked out: so a time inside a day means that whole day."""
    from audience.storage.published import Window

    tz = zone(time_zone)
    first, end = _day(since, "--since", tz), _day(until, "--until", tz)
    if first is not None and end is not None and end <= first:
        raise typer.BadParameter(f"the period from {first} to (excluding) {end} has no whole "
                                 "day: give an --until after --since", param_hint="--until")
    return Window(time_zone, first, end)


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
    "--since", help="First day of the period: a duration back from now (7d) or an ISO date in "
    "the store's time zone; periods are whole store-local days, so a time inside a day means "
    "that whole day. Default: all visits.")]
K = Annotated[int | None, typer.Option("--k", min=2, help="Suppress any group with fewer than k"
                                       " visits (default: report.k from the config, 5). Below "
                                       "report.k_floor (5) it is raised to the floor.")]
Until = Annotated[str | None, typer.Option(
    "--until", help="End of the period, excluded: an ISO date in the store's time zone or a "
    "duration back from now (0d: today's start). Default: now, so today, still open, is in; "
    "reports to share should end before today (see docs/operations.md, threat model).")]
ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", help="YAML config file (its report section: k, k_floor, timezones).")]


def report(
    store: Store,
    since: Since = None,
    until: Until = None,
    db: DbUrl = DEFAULT_URL,
    k: K = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help=f"HTML output path. Default: {_DEFAULTS.out_dir}/report-<store>.html")]
    = None,
    config: ConfigOpt = None,
) -> None:
    """Print a store's audience summary and write it as a self-contained HTML page.

    Figures are k-suppressed per camera and store-local day and added up over whole days;
    hidden cells appear only summed, in a "suppressed" row.
    """
    from audience.reports.report import build_report, render_table, write_html
    from audience.storage import query
    from audience.storage.db import ready_engine

    cfg = settings(config)
    k = _k(cfg, k)
    if out is not None:
        check_output(out)  # before the work: a folder is refused, nothing printed
    with ready_engine(db) as engine:
        window = window_since(since, store_zone(cfg, store, engine), until)
        known = store in query.stores(engine)
        rep = build_report(engine, store, window, k=k) if known else None
    if rep is None:  # other stores' ids are not listed: a reader may not know them
        typer.echo(f"no visits for store {store!r} in the database; nothing to report")
        return
    typer.echo(render_table(rep))
    path = write_html(rep, out or Path(cfg.out_dir) / report_file_name(store))
    typer.echo(f"HTML report: {path}")


def segments_command(
    by: Annotated[str, typer.Option(
        "--by", metavar="DIMS",
        help=f"Comma-separated dimensions, 1 to 3 of: {', '.join(DIMENSIONS)}. "
        "Example: `--by age_bracket,gender`.")],
    store: Store,
    period: Annotated[Period, typer.Option(
        "--period", help="`day` or `week` (ISO, Monday first; labelled by its Monday), in the "
        "store's time zone.")] = Period.day,
    since: Since = None,
    until: Until = None,
    db: DbUrl = DEFAULT_URL,
    k: K = None,
    csv_path: Annotated[Path | None, typer.Option(
        "--csv", help="Also write the rows as CSV: period, dimensions, visits, suppressed "
        "(the suppressed row has no labels).")] = None,
    png_path: Annotated[Path | None, typer.Option(
        "--png", help="Also draw the rows as a stacked bar chart (PNG).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Visits per period and audience segment (age bracket, gender, emotion) for marketers.

    Counts are **k-suppressed** per camera and store-local day, then added up: a segment under
    k is hidden, and more are hidden, chosen for all tables of the day together, wherever a
    subtotal another output shows would give a hidden one away (`audience privacy audit`
    checks it); a day with fewer than k visits at a camera is left out. Hidden segments are
    never listed: each period has one `(suppressed)` row with their sum. Unknown labels read
    `unknown`. Ethnicity is not offered. `--csv <file>` and `--png <file>` write the same rows.

    Example: `audience segments --by age_bracket,gender --period week --store store-1 --since 8w`
    """
    from audience.reports.segments import render_table as render_segments
    from audience.reports.segments import segments, write_csv, write_png
    from audience.storage import query
    from audience.storage.db import ready_engine

    try:
        dims = parse_dimensions(by)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--by") from None
    cfg = settings(config)
    k = _k(cfg, k)
    for output in (csv_path, png_path):
        if output is not None:
            check_output(output)  # before the work: a folder is refused, nothing printed
    with ready_engine(db) as engine:
        window = window_since(since, store_zone(cfg, store, engine), until)
        rows = segments(engine, store, dims, period, window, k=k)
        known = store in query.stores(engine) if not rows else True
    where = (f"from {window.first.isoformat()}" if window.first else "all days") + \
        (f" to {window.end.isoformat()} (excluded)" if window.end else "") + \
        f" ({window.time_zone})"
    title = f"Store {store}: visits per {period.value} by {', '.join(dims)}, {where}"
    if csv_path is not None:
        write_csv(rows, dims, period, csv_path)
    if png_path is not None:
        write_png(rows, k, png_path, title, dims)
    if not rows:
        typer.echo(f"nothing to publish for store {store!r}, {where}: " + (
            f"no day with {k} or more visits at a camera" if known
            else "no visits for this store in the database"))
    else:
        typer.echo(render_segments(rows, dims, period, k, title), nl=False)
    if csv_path is not None:
        typer.echo(f"CSV: {csv_path}")
    if png_path is not None:
        typer.echo(f"PNG: {png_path}")


def privacy_audit(
    store: Annotated[str, typer.Option("--store", help="Store id to audit.")],
    since: Since = None,
    until: Until = None,
    db: DbUrl = DEFAULT_URL,
    k: K = None,
    config: ConfigOpt = None,
) -> None:
    """Check that nothing published for a store confines a visitor group to 1..k-1 visits.

    For each camera and store-local day, puts together everything every output publishes
    (the report's tables, every `segments --by`, the report_* views, each "suppressed" sum and
    the day total) and bounds every cell and group of 1 to k-1 visits by linear programming:
    the least and the most visits consistent with all of it. A group bounded to 1..k-1 is a
    breach (listed with its labels: this is an operator's tool, run it where the raw visits
    may be seen). Exit 0: no breach; 1: breaches found.

    Example: `audience privacy audit --store store-1 --since 2026-11-30 --until 2026-12-07`
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from audience.storage import query
    from audience.storage.audit import audit_store
    from audience.storage.db import ready_engine

    cfg = settings(config)
    k = _k(cfg, k)
    with ready_engine(db) as engine:
        window = window_since(since, store_zone(cfg, store, engine), until)
        if store not in query.stores(engine):
            raise InputError(f"no visits for store {store!r} in the database: check the store "
                             "id (and --db)")
        days = list(audit_store(engine, store, window, k))
    table = Table(title=f"Privacy audit of store {store}, k={k} ({window.time_zone})",
                  title_justify="left")
    for name in ("day", "camera", "visits", "cells", "shown", "checked", "breaches"):
        table.add_column(name, justify="left" if name in ("day", "camera") else "right")
    breaches = []
    for d in days:
        table.add_row(d.day.isoformat(), escape(d.camera), str(d.visits),
                      *(map(str, (d.cells, d.shown, d.checked, len(d.breaches))) if d.published
                        else ("-", "-", "-", "under k: nothing published")))
        breaches += [(d, b) for b in d.breaches]
    console = Console(width=120, color_system=None, force_terminal=False)
    console.print(table)
    cells, shown = sum(d.cells for d in days), sum(d.shown for d in days)
    typer.echo(f"{len(days)} camera-days, {sum(d.published for d in days)} published; "
               f"{shown} of {cells} cells shown ({100 * shown / max(cells, 1):.0f}%), "
               f"{sum(d.checked for d in days)} hidden groups of 1..{k - 1} visits bounded")
    for d, b in breaches:
        typer.echo(f"BREACH {d.day} {d.camera}: {b.table} {'/'.join(b.found.key)} "
                   f"({b.found.visits} visits) is bounded to {b.found.least}..{b.found.most}")
    if breaches:
        typer.echo(f"{len(breaches)} groups bounded to 1..{k - 1} visits: do not publish "
                   "these days; report the breach (see docs/operations.md, Privacy)")
        raise typer.Exit(1)
    typer.echo(f"no cell or group is bounded to 1..{k - 1} visits")


def register(app: typer.Typer, load: Load | None = None) -> None:
    """Add the `report` and `segments` commands to the main `audience` app; ``load`` reads
    the config file (report.k, report.k_floor, report.timezones)."""
    global _load
    _load = load
    app.command("report")(report)
    app.command("segments")(segments_command)
    privacy = typer.Typer(help="Check what the outputs publish against a reader who combines "
                          "them.", no_args_is_help=True)
    privacy.command("audit")(privacy_audit)
    app.add_typer(privacy, name="privacy")
