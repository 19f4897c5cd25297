"""`audience db ...` commands (schema upgrade and readiness check) and `audience purge`."""

from __future__ import annotations

from typing import Annotated

import typer

from audience.storage.config import WRITER_URL_ENV, DatabaseConfig

# Same environment variables as the app config (AUDIENCE_DATABASE__URL wins).
DB_OPTION = typer.Option(
    "--db", envvar=["AUDIENCE_DATABASE__URL", "DATABASE_URL"],
    help="Database URL: sqlite:///path.db or postgresql://user:pass@host/db.")
DbUrl = Annotated[str, DB_OPTION]
DEFAULT_URL = DatabaseConfig().url

db_app = typer.Typer(help="Database schema: create, upgrade and check.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade(
    db: DbUrl = DEFAULT_URL,
    writer_url: Annotated[str | None, typer.Option(
        "--writer-url", envvar=WRITER_URL_ENV, show_default=False,
        help="PostgreSQL URL the pipeline services (infer, purge) connect with. Its user is "
             "created or updated as a login that may only write visits (no superuser, no "
             "ownership) and given the URL's password. Pass it in the environment, not on "
             "the command line, where other users of the machine can read it.")] = None,
) -> None:
    """Create or upgrade the schema to the latest revision (safe to run again); with a writer
    URL, also set up the pipeline's own database login. Run it as the database owner."""
    from audience.storage.db import mask, migrate, open_engine
    from audience.storage.roles import ensure_writer, writer_credentials

    engine = open_engine(db)
    try:
        # The writer URL is checked before anything changes: a typo leaves the database as is.
        writer = writer_credentials(writer_url, engine) if writer_url else None
        revision = migrate(engine)
        if writer:
            ensure_writer(engine, *writer)
    finally:
        engine.dispose()
    typer.echo(f"database {mask(db)} is at revision {revision} (latest)")
    if writer:
        typer.echo(f"writer role {writer[0]}: may log in and write visits, nothing more")


@db_app.command("check")
def check(db: DbUrl = DEFAULT_URL) -> None:
    """Exit 0 if the database is reachable and fully migrated, else 3 with the reason."""
    from audience.storage.db import current_revision, mask, ready_engine

    with ready_engine(db) as engine:
        revision = current_revision(engine)
    typer.echo(f"database {mask(db)} is reachable and at revision {revision} (latest)")


def purge(
    older_than: Annotated[str, typer.Option(
        "--older-than", help="Delete visits that ended longer ago than this: 36h, 90d, 12w.")],
    db: DbUrl = DEFAULT_URL,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Only count the visits that would be deleted.")] = False,
) -> None:
    """Delete visits older than the retention period, in one transaction; print how many."""
    from audience.storage.db import mask, ready_engine
    from audience.storage.purge import parse_duration, purge_visits

    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from None
    with ready_engine(db) as engine:
        result = purge_visits(engine, age, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    typer.echo(f"{verb} {result.visits} visits that ended before "
               f"{result.cutoff:%Y-%m-%d %H:%M} UTC from {mask(db)}"
               + (" (dry run: nothing changed)" if dry_run else ""))


def demo_data(
    store: Annotated[str, typer.Option("--store", help="Store id to fill.")] = "demo-store",
    camera: Annotated[str, typer.Option(
        "--camera", help="Camera id the synthetic visits are filed under.")] = "synthetic",
    days: Annotated[int, typer.Option(
        "--days", min=1, max=366, help="Whole UTC days before today to fill.")] = 7,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same visits.")]
    = 7,
    db: DbUrl = DEFAULT_URL,
) -> None:
    """Fill a store with seeded **synthetic** visits (a demo week of footfall), marked as such:
    `model_version` is `synthetic` and reports say so. Running it again changes nothing."""
    from audience.core.ids import check_id
    from audience.storage.db import mask, prepare_database
    from audience.storage.demo_data import fill_demo_store

    check_id(store, "store id")  # the one id rule, at every intake (exit 2)
    check_id(camera, "camera id")
    engine = prepare_database(db)  # like `audience run`: SQLite is created and migrated
    try:
        r = fill_demo_store(engine, store, camera, days=days, seed=seed)
    finally:
        engine.dispose()
    typer.echo(f"{r.visits} synthetic visits (not from a camera; model_version 'synthetic') "
               f"for store {r.store_id}, camera {r.camera_id}, {r.first_day} to {r.last_day} "
               f"UTC, seed {seed}, in {mask(db)}")


def register(app: typer.Typer) -> None:
    """Add the `db` command group, `purge` and `demo-data` to the main `audience` app."""
    app.add_typer(db_app, name="db")
    app.command("purge")(purge)
    app.command("demo-data")(demo_data)
