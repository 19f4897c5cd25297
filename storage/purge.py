"""Retention: delete visits older than a cutoff (``audience purge --older-than 90d``).

Visits are aggregate, anonymous rows, yet a deployment still owes a bounded retention period
(GDPR Art. 5(1)(e), storage limitation). The scheduled purge job in docker-compose and the
Kubernetes CronJob run this daily. Stores and cameras rows are kept: they are configuration,
not observations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, func, select

from audience.storage.db import StorageError, ensure_ready, storage_errors
from audience.storage.query import duration
from audience.storage.schema import VisitRow

# A typo such as "90" or "9h" must not wipe the table: below one hour is refused outright.
MIN_AGE = timedelta(hours=1)
MAX_AGE = timedelta(days=365_250)


@dataclass(frozen=True)
class PurgeResult:
    cutoff: datetime
    visits: int
    dry_run: bool


def parse_duration(text: str) -> timedelta:
    """'36h', '90d', '12w' -> timedelta. Raises ValueError with a one-line explanation."""
    try:
        age = duration(text, units="hdw")
    except OverflowError:  # more days than a timedelta holds
        age = MAX_AGE + MAX_AGE
    if age is None:
        raise ValueError(f"{text!r} is not a duration: use a number and a unit, "
                         "h (hours), d (days) or w (weeks), e.g. 90d")
    if age < MIN_AGE:
        raise ValueError(f"{text!r} is shorter than 1h: refusing to purge nearly every visit")
    if age > MAX_AGE:  # 9999999d would reach back before the year 1 (OverflowError)
        raise ValueError(f"{text[:40]!r} is longer than 1000 years: use a retention such as 90d")
    return age


def purge_visits(engine: Engine, older_than: timedelta, *, dry_run: bool = False,
                 now: datetime | None = None) -> PurgeResult:
    """Delete visits whose ``ended_at`` is before ``now - older_than``, in one transaction.

    The number reported is the DELETE's own row count, so it is exactly what was removed;
    ``dry_run`` only counts. Raises StorageError (unreachable, not migrated).
    """
    if now is not None and now.tzinfo is None:
        raise StorageError("purge: `now` must be timezone-aware (UTC)")
    cutoff = (now or datetime.now(UTC)) - older_than
    ensure_ready(engine)  # a missing schema is "run audience db upgrade", not a raw SQL error
    old = VisitRow.ended_at < cutoff
    with storage_errors(engine, "purging visits in"), engine.begin() as conn:
        if dry_run:
            n = conn.execute(select(func.count()).select_from(VisitRow).where(old)).scalar_one()
        else:
            n = conn.execute(delete(VisitRow).where(old)).rowcount
    return PurgeResult(cutoff=cutoff, visits=int(n), dry_run=dry_run)
