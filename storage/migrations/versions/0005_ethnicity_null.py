"""Visits without scores: JSON 'null' in the score columns becomes SQL NULL.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Before ``storage.schema`` mapped the score dicts to ``JSON(none_as_null=True)``, the sink wrote
a visit without ethnicity scores (ethnicity off, or no usable crop) as the JSON value ``null``
in ``visits.ethnicity_scores``, not as SQL NULL, so ``ethnicity_scores IS NULL`` missed those
rows. ``emotion_scores`` had the same mapping and the same old rows (a visit without a usable
crop has no emotion scores either), so it is rewritten too. Rows with real scores are not
touched; the schema is unchanged.

Both columns are ``JSON`` (0001): ``json`` on PostgreSQL, which has no equality operator, so
the JSON type of the value is compared (``json_typeof``); text in SQLite, read with
``json_type`` (only where ``json_valid``, so one malformed value cannot fail the upgrade).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("ethnicity_scores", "emotion_scores")


def _is_json_null(dialect: str, column: str) -> str:
    if dialect == "postgresql":
        return f"json_typeof({column}) = 'null'"
    return f"CASE WHEN json_valid({column}) THEN json_type({column}) END = 'null'"


def upgrade() -> None:
    # get_context() works online and offline (--sql), unlike get_bind().
    dialect = op.get_context().dialect.name
    for column in COLUMNS:
        op.execute(f"UPDATE visits SET {column} = NULL "  # noqa: S608 - constant names only
                   f"WHERE {_is_json_null(dialect, column)}")


def downgrade() -> None:
    # Nothing to undo: SQL NULL and JSON null both mean "no scores" to every reader (the ORM
    # reads both as None), and the schema did not change. Writing JSON null back would only
    # bring back the rows `IS NULL` misses.
    pass
