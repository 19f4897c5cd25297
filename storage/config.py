"""Typed configuration for the storage stage."""

from __future__ import annotations

from pydantic import Field

from audience.core.config import Strict

#: The environment variable holding the pipeline's own login URL (``storage.roles``).
WRITER_URL_ENV = "WRITER_DATABASE_URL"


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
    statement_timeout_s: float = Field(
        30, ge=0, le=3600, description="PostgreSQL statement_timeout of the workers' "
        "connections: a write that waits longer (a lock, a stuck disk) fails and is retried "
        "as an outage; 0 turns it off.")
    connect_timeout_s: int = Field(
        10, ge=1, le=300, description="Seconds to wait for a PostgreSQL connection before "
        "counting the database as unavailable.")
    write_timeout_s: float = Field(
        60, ge=1, le=3600, description="Client-side limit of one write: a server that never "
        "answers (a frozen host) has its connections closed after this and the write is "
        "retried as an outage.")
    outage_deadline_s: float = Field(
        3600, ge=1, description="How long a worker holds its visits and retries while the "
        "database is unavailable (down, read-only, full, refusing this user) before it exits "
        "with code 3; nothing is dead-lettered or committed meanwhile.")
    retry_max_s: float = Field(
        30, gt=0, le=600, description="Longest wait between two retries of a write while the "
        "database is unavailable (the wait doubles from 1 s up to this).")
    buffer_max_visits: int = Field(
        10_000, ge=1, description="`audience run`: visits held in memory while the database "
        "cannot be written (full disk, locked file); the oldest are dropped, with an error, "
        "beyond this.")
