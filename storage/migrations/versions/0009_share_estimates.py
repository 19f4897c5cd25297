"""Published share estimates for the dashboards: corrected shares with their 90% intervals.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

EM correction and a bootstrap interval cannot run in SQL, so ``audience dashboards shares``
computes them in Python (``reports.intervals``, the code `audience report` uses) from the
published cells only (``storage.published``) and writes them to ``share_estimates``: one row
per store, period (one store-local day, or a window of days ending on ``day``), head and
label. A label whose cells are all hidden has no row: its share is never published.

``report_share_estimates`` is what the dashboards read: the rows computed with the ``k`` and
the time zone the other ``report_*`` views use now (a row computed under a smaller k could
show a cell a larger k hides; a row of another zone cuts days differently), and ethnicity rows
only while ``report_settings.ethnicity_enabled``. Without the settings row it is empty, like
every ``report_*`` view (fail closed).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from audience.storage.schema import UTCDateTime

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "share_estimates"
VIEW = "report_share_estimates"
ETHNICITY = "Ethnicity"  #: the head name ``reports.intervals.TITLES`` gives ethnicity
COLUMNS = ("store_id", "first_day", "day", "period", "head", "label", "visits", "share",
           "share_low", "share_high", "share_text", "corrected", "row_order", "computed_at")


def _view() -> str:
    cols = ", ".join(f"e.{c}" for c in COLUMNS)
    return (
        f"CREATE VIEW {VIEW} AS SELECT {cols} FROM {TABLE} e "
        f"CROSS JOIN report_settings s WHERE s.id = 1 AND e.k = s.k "
        f"AND (e.head <> '{ETHNICITY}' OR s.ethnicity_enabled) "
        f"AND e.time_zone = COALESCE((SELECT max(o.time_zone) FROM store_utc_offsets o "
        f"WHERE o.store_id = e.store_id), 'UTC')"
    )


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("store_id", sa.String(), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("head", sa.String(), nullable=False),
        sa.Column("label", sa.String(), nullable=False),
        sa.Column("period", sa.String(), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("share_low", sa.Float(), nullable=False),
        sa.Column("share_high", sa.Float(), nullable=False),
        sa.Column("share_text", sa.String(), nullable=False),
        sa.Column("corrected", sa.Boolean(), nullable=False),
        sa.Column("row_order", sa.BigInteger(), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("time_zone", sa.String(), nullable=False),
        sa.Column("computed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "first_day", "day", "head", "label",
                                name="pk_share_estimates"),
        sa.CheckConstraint("k >= 2", name=op.f("ck_share_estimates_k_at_least_2")),
    )
    op.execute(_view())


def downgrade() -> None:
    op.execute(f"DROP VIEW IF EXISTS {VIEW}")
    op.drop_table(TABLE)
