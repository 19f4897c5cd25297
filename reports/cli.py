"""`audience report`: print a store's k-suppressed summary and write the HTML page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from reports.config import ReportConfig
from reports.report import build_report, render_table, write_html
from storage import query
from storage.cli import DEFAULT_URL, DbUrl, fail
from storage.db import StorageError, ensure_ready, open_engine

_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DEFAULTS = ReportConfig()


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """'7d' / '12h' / '30m' / '2w' back from now, or an ISO date/datetime (naive = UTC)."""
    if text is None or not text.strip():
        return None
    now = now or datetime.now(UTC)
    if m := _DURATION.match(text):
        return now - timedelta(**{_UNITS[m[2].lower()]: int(m[1])})
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither a duration (7d, 12h, 30m, 2w) nor an ISO date "
            "(2024-05-01 or 2024-05-01T08:00)") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "store"


def report(
    store: Annotated[str, typer.Option("--store", help="Store id to report on.")],
    since: Annotated[str | None, typer.Option(
        "--since", help="Start of the period: a duration back from now (7d, 12h) or an ISO "
        "date/datetime in UTC. Default: all visits.")] = None,
    db: DbUrl = DEFAULT_URL,
    k: Annotated[int, typer.Option(
        "--k", min=2, help="Suppress any group with fewer than k visits.")] = _DEFAULTS.k,
    out: Annotated[Path | None, typer.Option(
        "--out", help=f"HTML output path. Default: {_DEFAULTS.out_dir}/report-<store>.html")]
    = None,
) -> None:
    """Print a store's audience summary and write it as a self-contained HTML page."""
    start = parse_since(since)
    try:
        engine = open_engine(db, create=False)
        try:
            ensure_ready(engine)
            rep = build_report(engine, store, since=start, k=k)
            known = query.stores(engine) if rep.empty else []
        finally:
            engine.dispose()
    except StorageError as err:
        raise fail(err) from None
    if rep.empty:
        where = f"since {rep.since:%Y-%m-%d %H:%M} UTC" if rep.since else "in the database"
        hint = f" (stores with data: {', '.join(known)})" if known else ""
        typer.echo(f"no visits for store {store!r} {where}{hint}; nothing to report")
        return
    typer.echo(render_table(rep))
    path = write_html(rep, out or Path(_DEFAULTS.out_dir) / f"report-{_safe(store)}.html")
    typer.echo(f"HTML report: {path}")


def register(app: typer.Typer) -> None:
    """Add the `report` command to the main `audience` app."""
    app.command("report")(report)
