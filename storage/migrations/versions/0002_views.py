"""Reporting views of raw counts, for trusted dashboards, on SQLite and PostgreSQL.

Revision ID: 0002
Revises: 0001
Create Date: 2024-11-22

Views (raw aggregates, no k-suppression: the report_* views of 0003/0004 are suppressed):

- ``visits_hourly``: store_id, camera_id, hour (start of the UTC hour), visits, avg_dwell_s
- ``visits_daily_age``: store_id, day (UTC date), age_bracket, visits
- ``visits_daily_gender``: store_id, day (UTC date), gender, visits
- ``visits_daily_emotion``: store_id, day (UTC date), emotion, visits

Hour/day truncation differs by dialect: see ``storage.sqltime`` (shared with 0003).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from audience.storage.sqltime import time_expr

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DAILY = {
    "visits_daily_age": "age_bracket",
    "visits_daily_gender": "gender",
    "visits_daily_emotion": "emotion",
}


def _expr() -> dict[str, str]:
    # get_context() works online and offline (--sql), unlike get_bind().
    return time_expr(op.get_context().dialect.name)


def upgrade() -> None:
    e = _expr()
    op.execute(
        f"CREATE VIEW visits_hourly AS "
        f"SELECT store_id, camera_id, {e['hour']} AS hour, "
        f"count(*) AS visits, avg(dwell_s) AS avg_dwell_s "
        f"FROM visits GROUP BY store_id, camera_id, {e['hour']}"
    )
    for view, key in DAILY.items():
        op.execute(
            f"CREATE VIEW {view} AS "
            f"SELECT store_id, {e['day']} AS day, {key}, count(*) AS visits "
            f"FROM visits GROUP BY store_id, {e['day']}, {key}"
        )


def downgrade() -> None:
    for view in ("visits_hourly", *DAILY):
        op.execute(f"DROP VIEW IF EXISTS {view}")
