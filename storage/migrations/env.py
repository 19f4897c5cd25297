"""Alembic environment for the audience schema.

There is no alembic.ini: ``storage.db`` builds the Config in code and hands over an open
connection in ``config.attributes["connection"]``. A plain ``sqlalchemy.url`` main option works
too (online) and is what offline (``--sql``) mode uses.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from audience.storage.schema import Base

config = context.config
target_metadata = Base.metadata


def _configure(**kwargs: Any) -> None:
    # render_as_batch: SQLite cannot ALTER most things; batch mode rebuilds tables instead.
    context.configure(target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True, **kwargs)


def run_offline() -> None:
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
