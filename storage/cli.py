"""`audience db ...` commands: schema upgrade and readiness check."""

from __future__ import annotations

from typing import Annotated

import typer

from storage.config import DatabaseConfig
from storage.db import StorageError, ensure_ready, mask, migrate, open_engine

# Same environment variables as inference.settings (AUDIENCE_DATABASE__URL wins).
DB_OPTION = typer.Option(
    "--db", envvar=["AUDIENCE_DATABASE__URL", "DATABASE_URL"],
    help="Database URL: sqlite:///path.db or postgresql://user:pass@host/db.")
DbUrl = Annotated[str, DB_OPTION]
DEFAULT_URL = DatabaseConfig().url


def fail(err: StorageError) -> typer.Exit:
    """Print the one-line storage error to stderr; the caller raises the returned Exit(2)."""
    typer.echo(f"error: {err}", err=True)
    return typer.Exit(code=2)


db_app = typer.Typer(help="Database schema: create, upgrade and check.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade(db: DbUrl = DEFAULT_URL) -> None:
    """Create or upgrade the schema to the latest revision (safe to run again)."""
    try:
        revision = migrate(db)
    except StorageError as err:
        raise fail(err) from None
    typer.echo(f"database {mask(db)} is at revision {revision} (latest)")


@db_app.command("check")
def check(db: DbUrl = DEFAULT_URL) -> None:
    """Exit 0 if the database is reachable and fully migrated, else 2 with the reason."""
    try:
        engine = open_engine(db, create=False)
        try:
            revision = ensure_ready(engine)
        finally:
            engine.dispose()
    except StorageError as err:
        raise fail(err) from None
    typer.echo(f"database {mask(db)} is reachable and at revision {revision} (latest)")


def register(app: typer.Typer) -> None:
    """Add the `db` command group to the main `audience` app."""
    app.add_typer(db_app, name="db")
