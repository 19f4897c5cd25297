"""Read and write what the k-suppressed ``report_*`` views read: the one ``report_settings``
row (k, ethnicity) and each store's UTC offset periods (``store_utc_offsets``).

Changing ``k`` or ``ethnicity_enabled`` here takes effect in every view at once (views read the
row on each query). A missing row empties the views (fail closed); writing restores it.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext

from sqlalchemy import Connection, Engine, delete, insert, select, update

from audience.storage.db import StorageError, connected, mask, storage_errors
from audience.storage.schema import ReportSettingsRow, StoreUtcOffsetRow
from audience.storage.timezones import TABLE_SPAN, offset_periods, zone

Bind = Engine | Connection
MIN_K = 2  # k=1 would publish single visitors; the table's CHECK enforces it too


def read_report_settings(bind: Bind) -> tuple[int, bool]:
    """``(k, ethnicity_enabled)``; StorageError if the row is missing (views then show nothing)."""
    engine = bind if isinstance(bind, Engine) else bind.engine
    stmt = select(ReportSettingsRow.k, ReportSettingsRow.ethnicity_enabled).where(
        ReportSettingsRow.id == 1)
    with connected(bind, "reading report settings from") as conn:
        row = conn.execute(stmt).first()
    if row is None:
        raise StorageError(f"database {mask(engine)} has no report settings row, so every "
                           "report_* view is empty: write the settings again "
                           "(storage.report_settings.write_report_settings)")
    return int(row.k), bool(row.ethnicity_enabled)


def write_report_settings(bind: Bind, k: int, ethnicity_enabled: bool) -> None:
    """Set k and ethnicity_enabled in one transaction (re-creating the row if it is missing).

    With an Engine the change is committed here; with a Connection it runs in that connection's
    transaction (SQLAlchemy 2 autobegins one) and the caller commits or rolls back.
    """
    engine = bind if isinstance(bind, Engine) else bind.engine
    # bool is an int: refuse True/False as k, and anything that is not exactly a bool as a flag.
    if isinstance(k, bool) or not isinstance(k, int) or k < MIN_K:
        raise StorageError(f"invalid report setting k={k!r}: k must be an integer >= {MIN_K}, "
                           "or reports could single out one visitor")
    if not isinstance(ethnicity_enabled, bool):
        raise StorageError(f"invalid report setting ethnicity_enabled={ethnicity_enabled!r}: "
                           "pass True or False")
    values = {"k": k, "ethnicity_enabled": ethnicity_enabled}
    with storage_errors(engine, "writing report settings to"):
        if isinstance(bind, Connection):
            _upsert(bind, values)
        else:
            with bind.begin() as conn:
                _upsert(conn, values)


def _upsert(conn: Connection, values: Mapping[str, object]) -> None:
    done = conn.execute(update(ReportSettingsRow).where(ReportSettingsRow.id == 1)
                        .values(**values))
    if done.rowcount == 0:
        conn.execute(insert(ReportSettingsRow).values(id=1, **values))


def write_store_time_zones(bind: Bind, zones: Mapping[str, str]) -> None:
    """Replace the UTC offset periods of each store in ``zones`` (store id -> IANA name).

    Stores not named keep their rows (none: UTC). Periods cover ``timezones.TABLE_SPAN``.
    """
    engine = bind if isinstance(bind, Engine) else bind.engine
    rows = []
    for store, name in zones.items():
        try:
            tz = zone(name)
        except ValueError as exc:
            raise StorageError(f"store {store!r}: {exc}") from None
        rows += [{"store_id": store, "valid_from": a, "valid_until": b, "utc_offset_min": off,
                  "time_zone": name} for a, b, off in offset_periods(tz, *TABLE_SPAN)]
    with storage_errors(engine, "writing store time zones to"):
        conn_cm = nullcontext(bind) if isinstance(bind, Connection) else bind.begin()
        with conn_cm as conn:
            conn.execute(delete(StoreUtcOffsetRow)
                         .where(StoreUtcOffsetRow.store_id.in_(list(zones))))
            if rows:
                conn.execute(insert(StoreUtcOffsetRow), rows)


def read_store_time_zones(bind: Bind) -> dict[str, str]:
    """store id -> the time zone the views bucket it by (stores without one: UTC)."""
    stmt = select(StoreUtcOffsetRow.store_id, StoreUtcOffsetRow.time_zone).distinct()
    with connected(bind, "reading store time zones from") as conn:
        return {s: tz for s, tz in conn.execute(stmt).all()}
