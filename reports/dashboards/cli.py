"""`audience dashboards provision | grant | serve`: Superset dashboards for stores."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from audience.reports.cli import ConfigOpt, settings
from audience.reports.dashboards.client import Superset
from audience.storage.cli import DEFAULT_URL, DbUrl
from audience.storage.db import parse_url, ready_engine

log = logging.getLogger(__name__)

app = typer.Typer(
    help="Superset dashboards: a local server, the dashboard bundle, per-store access.\n\n"
    "Three commands give a local dashboard: `audience dashboards serve` (keep it running), "
    "`audience dashboards provision --password <the printed admin password> --db URL`, then "
    "open the printed URL.",
    no_args_is_help=True)

Url = Annotated[str, typer.Option(
    "--superset-url", envvar="SUPERSET_URL", help="Superset's base URL.")]
User = Annotated[str, typer.Option(
    "--user", envvar="SUPERSET_ADMIN_USER", help="A Superset admin user.")]
Password = Annotated[str, typer.Option(
    "--password", envvar="SUPERSET_ADMIN_PASSWORD", prompt=True, hide_input=True,
    help="That admin's password (or set SUPERSET_ADMIN_PASSWORD).")]
DEFAULT_SUPERSET = "http://127.0.0.1:8088"


@app.command()
def provision(
    superset_url: Url = DEFAULT_SUPERSET,
    user: User = "admin",
    password: Password = "",
    db: DbUrl = DEFAULT_URL,
    superset_db: Annotated[str | None, typer.Option(
        "--superset-db", help="The visits database URL as Superset reaches it, when that "
        "differs from --db (Superset in a container, say). Default: --db.")] = None,
    store: Annotated[list[str] | None, typer.Option(
        "--store", help="Make a store role for this store (repeatable). Default: every store "
        "in the database.")] = None,
    k: Annotated[int | None, typer.Option(
        "--k", min=2, help="The report views hide groups with fewer than k visits (default: "
        "report.k from the config, 5; below report.k_floor it is raised to the floor).")]
    = None,
    ethnicity: Annotated[bool, typer.Option(
        "--ethnicity/--no-ethnicity", help="Fill the report_ethnicity_daily view. Only where "
        "the deployment lawfully enables ethnicity inference (never in the EU).")] = False,
    config: ConfigOpt = None,
) -> None:
    """Import the dashboard bundle into Superset and create a role per store (idempotent).

    Writes the report settings (k, ethnicity) and the stores' time zones (report.timezones)
    into the visits database, imports the
    database connection, datasets, charts and the *Store audience* dashboard (fixed uuids: a
    second run overwrites in place) and gives each store a role with row-level security.
    """
    from audience.core.placeholders import refuse_placeholder
    from audience.reports.dashboards.provision import check_stores
    from audience.reports.dashboards.provision import provision as run_provision
    from audience.storage.query import stores as known_stores
    from audience.storage.report_settings import write_report_settings, write_store_time_zones

    refuse_placeholder(password, "SUPERSET_ADMIN_PASSWORD (--password)", "openssl rand -hex 16")
    cfg = settings(config)
    k, note = cfg.effective_k(k)
    if note:
        typer.echo(f"note: {note}", err=True)
    check_stores(list(store or []))  # a bad --store changes nothing, here or in Superset
    if superset_db:
        parse_url(superset_db)  # a typo is one line that does not echo the password
    with ready_engine(db) as engine:
        stores = list(store or known_stores(engine))
        check_stores(stores)
        write_report_settings(engine, k, ethnicity)
        write_store_time_zones(engine, cfg.timezones)

    sup = Superset(superset_url, user, password)
    result = run_provision(sup, superset_db or db, stores)
    typer.echo(f"provisioned {result.charts} charts on {len(result.datasets)} k-suppressed views"
               f" (k={k}); store roles: {', '.join(result.store_roles) or 'none (no stores yet)'}")
    typer.echo(f"dashboard: {result.dashboard_url}")


@app.command()
def grant(
    user: Annotated[str, typer.Option("--user", help="The store manager's Superset user.")],
    store: Annotated[str, typer.Option("--store", help="The store they may see.")],
    password: Annotated[str | None, typer.Option(
        "--password", help="Create the user with this password if missing (or reset it).")]
    = None,
    email: Annotated[str | None, typer.Option("--email", help="Email for a new user.")] = None,
    superset_url: Url = DEFAULT_SUPERSET,
    admin_user: Annotated[str, typer.Option(
        "--admin-user", envvar="SUPERSET_ADMIN_USER", help="A Superset admin user.")]
    = "admin",
    admin_password: Annotated[str, typer.Option(
        "--admin-password", envvar="SUPERSET_ADMIN_PASSWORD", prompt=True, hide_input=True,
        help="That admin's password.")] = "",
) -> None:
    """Let a store manager see one store: the store's role (row-level security) plus Gamma."""
    from audience.reports.dashboards.provision import grant as run_grant
    from audience.reports.dashboards.provision import role_name

    sup = Superset(superset_url, admin_user, admin_password)
    done = run_grant(sup, user, store, password=password, email=email)
    typer.echo(f"{done} user {user!r}: roles Gamma + {role_name(store)} (sees store {store!r} "
               "only)")


@app.command()
def serve(
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")] = 8088,
    home: Annotated[Path, typer.Option(
        "--home", help="Superset's metadata (SQLite), secret key and log.")]
    = Path("out/superset"),
    venv: Annotated[Path, typer.Option(
        "--venv", help="Superset's own virtualenv, built from the pinned lock on first use.")]
    = Path(".venv-superset"),
    admin_password: Annotated[str | None, typer.Option(
        "--admin-password", envvar="SUPERSET_ADMIN_PASSWORD",
        help="Password of the `admin` user created on first start; default: a random one, "
        "printed once.")] = None,
    metadata_db: Annotated[str | None, typer.Option(
        "--metadata-db", help="Superset's own metadata database. Default: SQLite in --home.")]
    = None,
) -> None:
    """Run a local Superset on 127.0.0.1 until Ctrl-C (first start builds its virtualenv)."""
    import secrets

    from audience.core.placeholders import refuse_placeholder
    from audience.reports.dashboards.serve import Local, ensure_env, prepare, start, wait_healthy

    generated = admin_password is None
    if admin_password is None:  # never admin/admin: a random password, shown once below
        admin_password = secrets.token_urlsafe(16)
    refuse_placeholder(admin_password, "SUPERSET_ADMIN_PASSWORD (--admin-password)",
                       "openssl rand -hex 16")
    local = Local(venv=venv, home=home, port=port, metadata_url=metadata_db)
    ensure_env(local)
    created = not (local.home / ".initialized").exists()
    prepare(local, "admin", admin_password)
    proc = start(local)
    wait_healthy(local.url, proc)
    if created and generated:
        typer.echo(f"admin password (shown once, keep it): {admin_password}")
    typer.echo(f"Superset is up at {local.url} (user admin). Next: audience dashboards "
               f"provision --superset-url {local.url} --password ... --db URL")
    typer.echo(f"log: {home / 'superset.log'}; Ctrl-C stops it")
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    if proc.returncode not in (0, -signal.SIGTERM, None):
        typer.echo(f"error: Superset exited with code {proc.returncode}", err=True)
        raise typer.Exit(3)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="dashboards")
