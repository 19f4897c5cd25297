"""`audience dashboards provision | grant | shares | serve`: Superset dashboards for stores."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from audience.core.errors import InputError
from audience.reports.cli import ConfigOpt, settings, window_since
from audience.storage.cli import DEFAULT_URL, DbUrl

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from audience.reports.dashboards.shares import Filled

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
RoleKeyFile = Annotated[Path, typer.Option(
    "--role-key-file", help="File holding the role key that Superset also has (it derives "
    "the dashboards' database logins from it). The environment variable DASHBOARDS_ROLE_KEY "
    "wins when set. `audience dashboards serve` writes this file.")]
DEFAULT_KEY_FILE = Path("out/superset/role_key")
RoleKey = Annotated[str | None, typer.Option(
    "--role-key", envvar="DASHBOARDS_ROLE_KEY", show_default=False, show_envvar=True,
    help="The role key itself, the same value Superset has. Prefer the environment variable: "
    "a command line is visible to other users of the machine.")]


def role_key(key: str | None, path: Path) -> str:
    """The role key: --role-key / DASHBOARDS_ROLE_KEY, else the file (error if neither, or
    too short)."""
    from audience.reports.dashboards.superset_hooks import KEY_ENV

    key = (key or "").strip()
    if not key and path.is_file():
        key = path.read_text().strip()
    if len(key) < 16:
        raise InputError(f"no role key of 16+ characters: set {KEY_ENV} to the value Superset "
                         f"has, or point --role-key-file at it (a local `audience dashboards "
                         f"serve` writes {DEFAULT_KEY_FILE})")
    return key


def reader_url(db: str, superset_db: str | None, key: str) -> tuple[str, str | None]:
    """Create the dashboards' database roles (PostgreSQL) and return the URL Superset connects
    with (the reader's login, never the --db user's) and the reader; SQLite: unchanged."""
    from sqlalchemy import make_url

    from audience.reports.dashboards.dbroles import ensure_reader
    from audience.reports.dashboards.superset_hooks import role_password
    from audience.storage.db import ready_engine

    with ready_engine(db) as engine:
        if engine.dialect.name != "postgresql":
            return superset_db or db, None
        reader = ensure_reader(engine, key)
    url = make_url(superset_db or db).set(username=reader, password=role_password(reader, key))
    return url.render_as_string(hide_password=False), reader


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
    role_key_option: RoleKey = None,
    role_key_file: RoleKeyFile = DEFAULT_KEY_FILE,
    config: ConfigOpt = None,
) -> None:
    """Import the dashboard bundle into Superset and create a role per store (idempotent).

    On PostgreSQL it also creates the dashboards' own database logins (run it as the
    migration user): Superset connects as ``<database>_dashboards``, which reads only the
    ``dashboards.report_*`` views, never ``visits``; store managers' queries run as their own
    login (``grant``). ``--db``'s password never reaches Superset. SQLite has no roles: its
    dashboards are for admins only.

    Writes the report settings (k, ethnicity) and the stores' time zones (report.timezones)
    into the visits database, imports the
    database connection, datasets, charts and the *Store audience* dashboard (fixed uuids: a
    second run overwrites in place) and gives each store a role with row-level security.
    """
    from audience.core.placeholders import refuse_placeholder
    from audience.reports.dashboards.client import Superset
    from audience.reports.dashboards.provision import check_stores
    from audience.reports.dashboards.provision import provision as run_provision
    from audience.storage.db import parse_url, ready_engine
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
    postgres = parse_url(db).get_backend_name() == "postgresql"
    key = role_key(role_key_option, role_key_file) if postgres else None
    target, reader = reader_url(db, superset_db, key) if key else (superset_db or db, None)
    result = run_provision(sup, target, stores, key)
    # The share table follows the settings written above (its view shows only rows of this k
    # and these zones): refill the default window now; the schedule keeps it fresh.
    with ready_engine(db) as engine:
        filled = _fill_shares(engine, stores, SHARES_SINCE)
    roles = (", ".join(result.store_roles) or "none (no stores yet)") if postgres else (
        "none (SQLite has no database roles: admins only)")
    typer.echo(f"provisioned {result.charts} charts on {len(result.datasets)} k-suppressed views"
               f" (k={k}); store roles: {roles}")
    typer.echo(f"share estimates: {sum(f.rows for f in filled)} rows for {len(filled)} stores "
               f"(the last {SHARES_SINCE}; `audience dashboards shares` refreshes them)")
    if reader:
        typer.echo(f"Superset reads as database role {reader} (every store, for admins only)")
    typer.echo(f"dashboard: {result.dashboard_url}")


@app.command()
def grant(
    user: Annotated[str, typer.Option("--user", help="The store manager's Superset user.")],
    store: Annotated[str, typer.Option("--store", help="The store they may see.")],
    db: DbUrl = DEFAULT_URL,
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
    role_key_option: RoleKey = None,
    role_key_file: RoleKeyFile = DEFAULT_KEY_FILE,
) -> None:
    """Let a store manager see one store: Gamma, the store's Superset role, and their own
    PostgreSQL login that sees only that store (run with the migration user's --db)."""
    from audience.reports.dashboards.client import Superset
    from audience.reports.dashboards.dbroles import grant_stores
    from audience.reports.dashboards.provision import check_stores, check_user
    from audience.reports.dashboards.provision import grant as run_grant
    from audience.storage.db import ready_engine

    check_stores([store])
    sup = Superset(superset_url, admin_user, admin_password)
    check_user(sup, user, password)
    key = role_key(role_key_option, role_key_file)
    with ready_engine(db) as engine:
        role = grant_stores(engine, user, [store], key)
    done = run_grant(sup, user, store, key, password=password, email=email)
    typer.echo(f"{done} user {user!r}: Gamma + the role of store {store!r}; their queries run "
               f"as database role {role}, which sees that store only")


#: The window `provision` fills and `shares` refreshes by default: today and the 27 days before.
SHARES_SINCE = "27d"


def _fill_shares(engine: Engine, stores: list[str], since: str | None) -> list[Filled]:
    """Fill the share table for ``stores`` from the day that holds ``since`` (in each store's
    zone; None: every day), one progress line per store."""
    from audience.reports.dashboards.shares import filling
    from audience.storage.report_settings import read_store_time_zones

    zones = read_store_time_zones(engine)
    first_of = {s: window_since(since, zones.get(s, "UTC")).first for s in stores}
    done = []
    t0 = time.monotonic()
    for f in filling(engine, stores, first_of, zones=zones):
        typer.echo(f"store {f.store}: {f.rows} share rows for {f.days} days with published "
                   f"visits, {f.first or 'first visit'} to {f.last} ({f.time_zone}, k={f.k}), "
                   f"{time.monotonic() - t0:.1f} s")
        done.append(f)
        t0 = time.monotonic()
    return done


@app.command()
def shares(
    store: Annotated[list[str] | None, typer.Option(
        "--store", help="Fill this store (repeatable). Default: every store in the database.")]
    = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="First day to fill: a duration back from now (7d) or an ISO date, in "
        "the store's time zone; whole days. The rows of a whole window are written too.")]
    = SHARES_SINCE,
    all_days: Annotated[bool, typer.Option(
        "--all", help="Fill every day from the store's first visit (overrides --since).")]
    = False,
    db: DbUrl = DEFAULT_URL,
) -> None:
    """Compute the dashboards' corrected shares with 90% intervals (idempotent).

    The same figures as `audience report`: EM-corrected shares of the published (k-suppressed)
    cells with a bootstrap interval, per store-local day and for the whole window, written to
    the share_estimates table that the dashboards read through report_share_estimates. k,
    ethnicity and the time zones are the report views' (`audience dashboards provision` writes
    them). Run it on a schedule: today's figures change as visits arrive.
    """
    from audience.core.ids import check_id
    from audience.storage.db import mask, ready_engine
    from audience.storage.query import stores as known_stores

    for s in store or []:
        check_id(s, "store id")
    with ready_engine(db) as engine:
        known = known_stores(engine)
        missing = [s for s in store or [] if s not in known]
        if missing:
            raise InputError(f"no visits for store {missing[0]!r} in {mask(engine)}: nothing "
                             "to fill (check --store)")
        filled = _fill_shares(engine, list(store or known), None if all_days else since)
    typer.echo(f"wrote {sum(f.rows for f in filled)} share rows for {len(filled)} stores "
               "into share_estimates")


@app.command()
def bench(
    store: Annotated[str, typer.Option("--store", help="The store a throwaway manager sees.")],
    db: DbUrl = DEFAULT_URL,
    runs: Annotated[int, typer.Option("--runs", min=3, help="Timed runs per query.")] = 20,
    role_key_option: RoleKey = None,
    role_key_file: RoleKeyFile = DEFAULT_KEY_FILE,
) -> None:
    """Measure what store isolation costs the dashboard's queries (PostgreSQL, as the owner).

    Median ms per query as the owner on the public views and as a manager's own role on the
    isolated views, and with a new connection per query as Superset makes them.
    """
    from audience.reports.dashboards.bench import isolation_cost
    from audience.reports.dashboards.provision import check_stores
    from audience.storage.db import ready_engine

    check_stores([store])
    key = role_key(role_key_option, role_key_file)
    with ready_engine(db) as engine:
        result = isolation_cost(engine, store, key, runs)
    typer.echo(f"{'query':<18} {'rows':>5} {'owner ms':>9} {'manager ms':>11} "
               f"{'+connect ms':>12} same")
    for name, r in result.items():
        typer.echo(f"{name:<18} {int(r['rows']):>5} {r['owner_ms']:>9} {r['manager_ms']:>11} "
                   f"{r['manager_new_connection_ms']:>12} {'yes' if r['same_rows'] else 'NO'}")


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
