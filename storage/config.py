"""Typed configuration for the storage stage."""

from __future__ import annotations

from pydantic import Field

from audience.core.config import Strict


class DatabaseConfig(Strict):
    url: str = Field(
        "sqlite:///audience.db",
        min_length=1,
        description="SQLAlchemy database URL: a SQLite file (sqlite:///path/to/file.db, the "
        "default) or PostgreSQL (postgresql://user:password@host:5432/dbname).",
    )
    batch_size: int = Field(
        50, ge=1, description="Visits buffered by the sink before they are written in one "
        "transaction (larger: fewer round trips; smaller: less lost on a crash).")
