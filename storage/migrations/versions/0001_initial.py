"""Initial tables: stores, cameras, visits.

Revision ID: 0001
Revises:
Create Date: 2024-11-22

Types are spelled out here (not imported from audience.storage.schema) so this migration keeps
meaning the same thing when the models change later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "stores",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stores"),
    )
    op.create_table(
        "cameras",
        sa.Column("store_id", sa.String(), nullable=False),
        sa.Column("camera_id", sa.String(), nullable=False),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["store_id"], ["stores.id"], name="fk_cameras_store_id_stores"),
        sa.PrimaryKeyConstraint("store_id", "camera_id", name="pk_cameras"),
    )
    op.create_table(
        "visits",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("store_id", sa.String(), nullable=False),
        sa.Column("camera_id", sa.String(), nullable=False),
        sa.Column("track_id", sa.String(), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=False),
        sa.Column("dwell_s", sa.Float(), nullable=False),
        sa.Column("n_crops", sa.Integer(), nullable=False),
        sa.Column("age", sa.Float(), nullable=True),
        sa.Column("age_bracket", sa.String(), nullable=True),
        sa.Column("gender", sa.String(), nullable=True),
        sa.Column("gender_score", sa.Float(), nullable=True),
        sa.Column("emotion", sa.String(), nullable=True),
        sa.Column("emotion_scores", sa.JSON(), nullable=True),
        sa.Column("ethnicity", sa.String(), nullable=True),
        sa.Column("ethnicity_scores", sa.JSON(), nullable=True),
        sa.Column("model_version", sa.String(), nullable=False),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id", "camera_id"], ["cameras.store_id", "cameras.camera_id"],
            name="fk_visits_store_id_camera_id_cameras"),
        sa.PrimaryKeyConstraint("id", name="pk_visits"),
        sa.UniqueConstraint("store_id", "camera_id", "track_id",
                            name="uq_visits_store_id_camera_id_track_id"),
    )
    op.create_index("ix_visits_store_started", "visits", ["store_id", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_visits_store_started", table_name="visits")
    op.drop_table("visits")
    op.drop_table("cameras")
    op.drop_table("stores")
