"""k-suppressed reporting views for dashboards (Superset), and the report_settings table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

``report_settings`` holds one row (id = 1): ``k`` (>= 2, default 5) and ``ethnicity_enabled``
(default false). Every view cross-joins it, so deleting the row empties every view (fail closed).

Views (a "cell" is one row; labels that are NULL read 'unknown'):

- ``report_visits_hourly``: store_id, camera_id, hour (start of the UTC hour), day (UTC date),
  visits, avg_dwell_s
- ``report_visits_daily``: store_id, camera_id, day, visits, avg_dwell_s
- ``report_dwell_daily``: store_id, camera_id, day, dwell_band ('0-10s', '10-30s', '30-60s',
  '1-3 min', '3-10 min', '10+ min'; lower bound inclusive), band_order (1..6), visits
- ``report_age_daily``: store_id, camera_id, day, age_bracket, visits
- ``report_gender_daily``: store_id, camera_id, day, gender, visits
- ``report_emotion_hourly``: store_id, camera_id, hour, day, emotion, visits
- ``report_ethnicity_daily``: store_id, camera_id, day, ethnicity, visits; no rows at all unless
  ``report_settings.ethnicity_enabled`` is true

Suppression rules, applied in SQL with k read from report_settings:

1. Primary: a cell with fewer than k visits is absent.
2. Complementary: within a partition whose total is published elsewhere, if exactly one cell is
   hidden, the smallest shown cell (ties broken by label, byte order) is hidden too, so the
   total minus the shown cells cannot reveal the hidden one. Partitions: (store, camera, day)
   for report_visits_hourly (the day's total is in report_visits_daily) and for the dwell, age,
   gender and ethnicity views; (store, camera, hour) for report_emotion_hourly, which also shows
   only hours that report_visits_hourly shows. report_visits_daily is primary only. A partition
   whose total is under k loses every cell.

Limits: suppression protects each view's own published totals. It is not a guarantee against
every differencing across views (e.g. a camera subtracted from a store-wide figure published
elsewhere, or one label's daily cell set against its hourly cells). The
grain is per camera per day (per hour for footfall and emotion), so small stores and quiet
cameras see little or nothing: that is intended. Trusted raw counts stay in the 0002 views.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from audience.storage.sqltime import time_expr

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (exclusive upper bound in seconds, label); the last band is open-ended.
DWELL_BANDS: tuple[tuple[float | None, str], ...] = (
    (10, "0-10s"), (30, "10-30s"), (60, "30-60s"), (180, "1-3 min"), (600, "3-10 min"),
    (None, "10+ min"),
)

VIEWS = (
    "report_visits_hourly", "report_visits_daily", "report_dwell_daily", "report_age_daily",
    "report_gender_daily", "report_emotion_hourly", "report_ethnicity_daily",
)


def _case(values: Sequence[str]) -> str:
    whens = " ".join(f"WHEN dwell_s < {upper} THEN {value}"
                     for (upper, _), value in zip(DWELL_BANDS[:-1], values, strict=False))
    return f"CASE {whens} ELSE {values[-1]} END"


def _view(name: str, *, keys: Sequence[str], part: str, order: str, out: str,
          measures: str = "", complementary: bool = True, where: str = "") -> str:
    """CREATE VIEW over cells = visits grouped by ``keys`` (SQL expressions with aliases).

    ``part``: the partition columns for complementary suppression; ``order``: the label that
    breaks ties between equally small cells; ``out``: the published columns.
    """
    select = ", ".join(keys)
    group = ", ".join(k.rsplit(" AS ", 1)[0] for k in keys)  # the expressions, not the aliases
    hidden = "CASE WHEN c.visits < s.k THEN 1 ELSE 0 END"
    keep = "c.visits >= c.k"
    if complementary:
        keep += " AND NOT (c.n_hidden = 1 AND c.smallest = 1)"
    return (
        f"CREATE VIEW {name} AS "
        f"WITH cells AS (SELECT {select}, count(*) AS visits{measures} "
        f"FROM visits GROUP BY {group}), "
        f"ranked AS (SELECT c.*, s.k AS k, "
        f"sum({hidden}) OVER (PARTITION BY {part}) AS n_hidden, "
        # Shown cells first, smallest first: row 1 is the smallest shown cell (if any).
        f"row_number() OVER (PARTITION BY {part} ORDER BY {hidden}, c.visits, {order}) "
        f"AS smallest "
        f"FROM cells c CROSS JOIN report_settings s WHERE s.id = 1{where}) "
        f"SELECT {out} FROM ranked c WHERE {keep}"
    )


def _statements(dialect: str) -> list[str]:
    e = time_expr(dialect)
    hour, day, collate = f"{e['hour']} AS hour", f"{e['day']} AS day", e["collate"]
    sc = "store_id, camera_id"
    avg = ", avg(dwell_s) AS avg_dwell_s"
    band_labels = [f"'{label}'" for _, label in DWELL_BANDS]
    band_orders = [str(i) for i in range(1, len(DWELL_BANDS) + 1)]
    stmts = [
        _view("report_visits_hourly", keys=[sc, hour, day], part=f"{sc}, day", order="hour",
              measures=avg, out=f"{sc}, hour, day, visits, avg_dwell_s"),
        _view("report_visits_daily", keys=[sc, day], part=f"{sc}, day", order="day",
              measures=avg, out=f"{sc}, day, visits, avg_dwell_s", complementary=False),
        _view("report_dwell_daily", part=f"{sc}, day", order="band_order",
              keys=[sc, day, f"{_case(band_labels)} AS dwell_band",
                    f"{_case(band_orders)} AS band_order"],
              out=f"{sc}, day, dwell_band, band_order, visits"),
        # Only hours that report_visits_hourly shows: an hour it hides (complementary
        # suppression) must not reappear as the sum of its emotion cells.
        _view("report_emotion_hourly", part=f"{sc}, hour", order=f"emotion{collate}",
              keys=[sc, hour, day, "COALESCE(emotion, 'unknown') AS emotion"],
              out=f"{sc}, hour, day, emotion, visits",
              where=" AND EXISTS (SELECT 1 FROM report_visits_hourly h WHERE h.store_id = "
                    "c.store_id AND h.camera_id = c.camera_id AND h.hour = c.hour)"),
    ]
    for view, label, where in [("report_age_daily", "age_bracket", ""),
                               ("report_gender_daily", "gender", ""),
                               ("report_ethnicity_daily", "ethnicity",
                                " AND s.ethnicity_enabled")]:
        stmts.append(_view(view, part=f"{sc}, day", order=f"{label}{collate}", where=where,
                           keys=[sc, day, f"COALESCE({label}, 'unknown') AS {label}"],
                           out=f"{sc}, day, {label}, visits"))
    return stmts


def upgrade() -> None:
    settings = op.create_table(
        "report_settings",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("k", sa.Integer(), server_default=sa.text("5"), nullable=False),
        sa.Column("ethnicity_enabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_report_settings_single_row")),
        sa.CheckConstraint("k >= 2", name=op.f("ck_report_settings_k_at_least_2")),
        sa.PrimaryKeyConstraint("id", name="pk_report_settings"),
    )
    op.bulk_insert(settings, [{"id": 1, "k": 5, "ethnicity_enabled": False}])
    # get_context() works online and offline (--sql), unlike get_bind().
    for stmt in _statements(op.get_context().dialect.name):
        op.execute(stmt)


def downgrade() -> None:
    for view in reversed(VIEWS):  # report_emotion_hourly reads report_visits_hourly
        op.execute(f"DROP VIEW IF EXISTS {view}")
    op.drop_table("report_settings")
