"""Attention per visit: seconds facing the camera and whether the visitor was a watcher.

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-07

``visits.attention_s`` (float) and ``visits.watcher`` (boolean) are nullable: visits stored
before attention was measured stay valid and read "unknown".

``report_attention_daily`` (store_id, camera_id, day, looked, visits, avg_attention_s): the
visits of one store-local day by whether they looked (``looked``: 'watcher', 'not watching',
'unknown'), under the rules of the other ``report_*`` views (0004): a cell under k is hidden,
a day under k is left out whole, and the hidden cells of a published day hold k or more
visits together. Every visit is a passer-by (in view): passers-by are the day's total
(``report_visits_daily``), watchers its 'watcher' cell, the attention rate their ratio.
``avg_attention_s`` is the mean attention time of the cell's visits (k or more of them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from audience.storage.sqltime import local_expr, time_expr

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEW = "report_attention_daily"
#: A visit's attention label; the same expression as storage.published's 'looked' key.
LOOKED = ("CASE WHEN watcher IS NULL THEN 'unknown' WHEN watcher THEN 'watcher' "
          "ELSE 'not watching' END")


def _view(dialect: str) -> str:
    """0004's construction (cells, primary and complementary suppression) over the label."""
    day = local_expr(dialect, "day", "v.started_at", "COALESCE(o.utc_offset_min, 0)")
    collate = time_expr(dialect)["collate"]
    part = "c.store_id, c.camera_id, c.day"
    primary = "CASE WHEN c.visits < s.k THEN {} ELSE 0 END"
    return (
        f"CREATE VIEW {VIEW} AS "
        f"WITH local AS (SELECT v.store_id, v.camera_id, v.attention_s, v.watcher, "
        f"{day} AS day FROM visits v "
        f"LEFT JOIN store_utc_offsets o ON o.store_id = v.store_id "
        f"AND v.started_at >= o.valid_from AND v.started_at < o.valid_until), "
        f"cells AS (SELECT store_id, camera_id, day, {LOOKED} AS looked, count(*) AS visits, "
        f"avg(attention_s) AS avg_attention_s FROM local "
        f"GROUP BY store_id, camera_id, day, {LOOKED}), "
        f"ranked AS (SELECT c.*, s.k AS k, "
        f"sum({primary.format('c.visits')}) OVER (PARTITION BY {part}) AS hidden_sum, "
        f"row_number() OVER (PARTITION BY {part} ORDER BY {primary.format(1)}, c.visits, "
        f"c.looked{collate}) AS smallest "
        f"FROM cells c CROSS JOIN report_settings s WHERE s.id = 1) "
        f"SELECT store_id, camera_id, day, looked, visits, avg_attention_s FROM ranked c "
        f"WHERE c.visits >= c.k "
        f"AND NOT (c.hidden_sum > 0 AND c.hidden_sum < c.k AND c.smallest = 1)"
    )


def upgrade() -> None:
    op.add_column("visits", sa.Column("attention_s", sa.Float(), nullable=True))
    op.add_column("visits", sa.Column("watcher", sa.Boolean(), nullable=True))
    # get_context() works online and offline (--sql), unlike get_bind().
    op.execute(_view(op.get_context().dialect.name))


def downgrade() -> None:
    op.execute(f"DROP VIEW IF EXISTS {VIEW}")
    # Plain DROP COLUMN (PostgreSQL; SQLite 3.35+): a batch copy of the table would fail on
    # SQLite, whose other views read `visits` while the copy is renamed.
    for column in ("watcher", "attention_s"):
        op.execute(f"ALTER TABLE visits DROP COLUMN {column}")
