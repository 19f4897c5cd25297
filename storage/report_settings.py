"""Read and write the one ``report_settings`` row that the k-suppressed ``report_*`` views use.

Changing ``k`` or ``ethnicity_enabled`` here takes effect in every view at once (views read the
row on each query). A missing row empties the views (fail closed); writing restores it.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, Engine, insert, select, update

from audience.storage.db import StorageError, connected, mask, storage_errors
from audience.storage.schema import ReportSettingsRow

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
