"""Store-local report views, emotion per day, and complementary suppression by hidden total.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

``store_utc_offsets`` holds each store's UTC offset in minutes per period (store_id,
valid_from, valid_until, utc_offset_min, time_zone), written from the configured time zone
(``report.timezones``) by ``storage.report_settings.write_store_time_zones``. SQLite has no
time zones, so Python turns a zone into offset periods (daylight saving included) and both
dialects read the same rows. A store without rows is bucketed in UTC.

The ``report_*`` views are recreated (``report_settings`` from 0003 stays). Hours and days
are the store's local wall clock: ``hour`` is a timestamp without time zone, ``day`` a date.

- ``report_visits_hourly``: store_id, camera_id, hour, day, visits, avg_dwell_s
- ``report_visits_daily``: store_id, camera_id, day, visits, avg_dwell_s
- ``report_dwell_daily``: store_id, camera_id, day, dwell_band, band_order (1..6), visits
- ``report_age_daily`` / ``report_gender_daily`` / ``report_emotion_daily`` /
  ``report_ethnicity_daily``: store_id, camera_id, day, <label>, visits; a NULL label (no
  usable crop) reads 'unknown', so every visit of a published day is in every breakdown.
  ``report_emotion_hourly`` is gone: emotion is per day like the other attributes, because an
  hourly emotion cell set against a daily one (as ``audience segments`` publishes) could be
  recovered by subtraction.

Suppression, with k from report_settings; a partition is one (store, camera, local day):

1. Primary: a cell with fewer than k visits is absent; a partition whose total is under k
   loses every cell (report_visits_daily is primary only).
2. Complementary: if the hidden cells of a partition hold fewer than k visits together, the
   smallest shown cell (ties broken by label, byte order) is hidden too. The hidden cells of a
   published partition therefore always hold k or more visits: the day total minus the shown
   cells reveals no cell and no group smaller than k. (0003 hid one more only when exactly one
   cell was hidden; two cells of 1 visit each then summed to 2.)

Every figure ``audience report`` and ``audience segments`` publish is a sum of cells with this
grain and these rules (``storage.published``), so no output can be subtracted from another to
reveal a hidden cell: see docs/operations.md, "Privacy: the k-anonymity threat model".
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

from audience.storage.sqltime import DWELL_BANDS, dwell_band_expr, local_expr, time_expr

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS = (
    "report_visits_hourly", "report_visits_daily", "report_dwell_daily", "report_age_daily",
    "report_gender_daily", "report_emotion_daily", "report_ethnicity_daily",
)
TS = sa.DateTime(timezone=True)


def _view(dialect: str, name: str, *, keys: Sequence[str], order: str, out: str,
          measures: str = "", complementary: bool = True, where: str = "") -> str:
    """CREATE VIEW over cells = visits grouped by store, camera, local day and ``keys``."""
    hour = local_expr(dialect, "hour", "v.started_at", "COALESCE(o.utc_offset_min, 0)")
    day = local_expr(dialect, "day", "v.started_at", "COALESCE(o.utc_offset_min, 0)")
    keys = ["store_id", "camera_id", "day", *keys]
    group = ", ".join(k.rsplit(" AS ", 1)[0] for k in keys)  # the expressions, not the aliases
    part = "c.store_id, c.camera_id, c.day"
    primary = "CASE WHEN c.visits < s.k THEN {} ELSE 0 END"
    keep = "c.visits >= c.k"
    if complementary:
        keep += " AND NOT (c.hidden_sum > 0 AND c.hidden_sum < c.k AND c.smallest = 1)"
    return (
        f"CREATE VIEW {name} AS "
        f"WITH local AS (SELECT v.store_id, v.camera_id, v.dwell_s, v.age_bracket, v.gender, "
        f"v.emotion, v.ethnicity, {hour} AS hour, {day} AS day FROM visits v "
        f"LEFT JOIN store_utc_offsets o ON o.store_id = v.store_id "
        f"AND v.started_at >= o.valid_from AND v.started_at < o.valid_until), "
        f"cells AS (SELECT {', '.join(keys)}, count(*) AS visits{measures} "
        f"FROM local GROUP BY {group}), "
        f"ranked AS (SELECT c.*, s.k AS k, "
        f"sum({primary.format('c.visits')}) OVER (PARTITION BY {part}) AS hidden_sum, "
        # Shown cells first, smallest first: row 1 is the smallest shown cell (if any).
        f"row_number() OVER (PARTITION BY {part} ORDER BY {primary.format(1)}, c.visits, "
        f"{order}) AS smallest "
        f"FROM cells c CROSS JOIN report_settings s WHERE s.id = 1{where}) "
        f"SELECT {out} FROM ranked c WHERE {keep}"
    )


def _statements(dialect: str) -> list[str]:
    collate = time_expr(dialect)["collate"]
    sc = "store_id, camera_id"
    avg = ", avg(dwell_s) AS avg_dwell_s"
    orders = " ".join(f"WHEN '{label}' THEN {i}" for i, (_, label) in enumerate(DWELL_BANDS, 1))
    stmts = [
        _view(dialect, "report_visits_hourly", keys=["hour"], order="c.hour", measures=avg,
              out=f"{sc}, hour, day, visits, avg_dwell_s"),
        _view(dialect, "report_visits_daily", keys=[], order="c.day", measures=avg,
              out=f"{sc}, day, visits, avg_dwell_s", complementary=False),
        _view(dialect, "report_dwell_daily", order=f"c.dwell_band{collate}",
              keys=[f"{dwell_band_expr()} AS dwell_band"],
              out=f"{sc}, day, dwell_band, CASE dwell_band {orders} END AS band_order, visits"),
    ]
    for view, label, where in [("report_age_daily", "age_bracket", ""),
                               ("report_gender_daily", "gender", ""),
                               ("report_emotion_daily", "emotion", ""),
                               ("report_ethnicity_daily", "ethnicity",
                                " AND s.ethnicity_enabled")]:
        stmts.append(_view(dialect, view, order=f"c.{label}{collate}", where=where,
                           keys=[f"COALESCE({label}, 'unknown') AS {label}"],
                           out=f"{sc}, day, {label}, visits"))
    return stmts


def _drop(views: Sequence[str]) -> None:
    for view in views:
        op.execute(f"DROP VIEW IF EXISTS {view}")


def upgrade() -> None:
    op.create_table(
        "store_utc_offsets",
        sa.Column("store_id", sa.String(), nullable=False),
        sa.Column("valid_from", TS, nullable=False),
        sa.Column("valid_until", TS, nullable=False),
        sa.Column("utc_offset_min", sa.Integer(), nullable=False),
        sa.Column("time_zone", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "valid_from", name="pk_store_utc_offsets"),
    )
    _drop(["report_emotion_hourly", *VIEWS])  # 0003's emotion view reads its hourly one
    # get_context() works online and offline (--sql), unlike get_bind().
    for stmt in _statements(op.get_context().dialect.name):
        op.execute(stmt)


def downgrade() -> None:
    _drop(VIEWS)
    op.drop_table("store_utc_offsets")
    # 0003's views, exactly as 0003 created them.
    path = Path(__file__).with_name("0003_report_views.py")
    spec = importlib.util.spec_from_file_location("_audience_0003", path)
    assert spec is not None and spec.loader is not None
    m0003 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m0003)
    for stmt in m0003._statements(op.get_context().dialect.name):
        op.execute(stmt)
