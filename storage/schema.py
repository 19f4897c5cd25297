"""Database schema (SQLAlchemy 2 typed ORM).

Privacy rule: no column holds image bytes or embeddings. A visit row carries only the track
timing, the model's labels and the small named score dicts (label -> probability).

The migrations in ``storage/migrations`` create these tables; ``tests/test_storage.py`` checks
that a migrated database matches this module. Reporting views (created by migrations 0002 and
0004) are described as read-only ``Table`` objects in ``VIEWS`` so queries get typed columns.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, so later migrations can refer to them on every dialect.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every dialect.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as naive
    UTC text and get ``tzinfo=UTC`` back on read. Naive input is refused: it is ambiguous.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: pass a timezone-aware UTC one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    # none_as_null: a visit without scores is SQL NULL (IS NULL finds it), never JSON 'null'
    type_annotation_map = {datetime: UTCDateTime(), dict[str, float]: JSON(none_as_null=True)}


class StoreRow(Base):
    __tablename__ = "stores"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class CameraRow(Base):
    __tablename__ = "cameras"

    store_id: Mapped[str] = mapped_column(String, ForeignKey("stores.id"), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class VisitRow(Base):
    __tablename__ = "visits"
    __table_args__ = (
        ForeignKeyConstraint(["store_id", "camera_id"], ["cameras.store_id", "cameras.camera_id"]),
        UniqueConstraint("store_id", "camera_id", "track_id"),
        Index("ix_visits_store_started", "store_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    store_id: Mapped[str] = mapped_column(String)
    camera_id: Mapped[str] = mapped_column(String)
    track_id: Mapped[str] = mapped_column(String)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    dwell_s: Mapped[float] = mapped_column(Float)
    n_crops: Mapped[int] = mapped_column(Integer)
    # Labels are nullable: a track may end without a crop good enough to classify.
    age: Mapped[float | None] = mapped_column(Float)
    age_bracket: Mapped[str | None] = mapped_column(String)
    gender: Mapped[str | None] = mapped_column(String)
    gender_score: Mapped[float | None] = mapped_column(Float)
    emotion: Mapped[str | None] = mapped_column(String)
    emotion_scores: Mapped[dict[str, float] | None]
    ethnicity: Mapped[str | None] = mapped_column(String)
    ethnicity_scores: Mapped[dict[str, float] | None]
    model_version: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Attention (migration 0008): NULL on visits stored before it was measured.
    attention_s: Mapped[float | None] = mapped_column(Float)
    watcher: Mapped[bool | None] = mapped_column(Boolean)


class ReportSettingsRow(Base):
    """The one row (id = 1) of settings the k-suppressed ``report_*`` views read.

    Without it every ``report_*`` view is empty: the views fail closed.
    """

    __tablename__ = "report_settings"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("k >= 2", name="k_at_least_2"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    k: Mapped[int] = mapped_column(Integer, server_default=text("5"))
    ethnicity_enabled: Mapped[bool] = mapped_column(Boolean, server_default=false())


class StoreUtcOffsetRow(Base):
    """A store's UTC offset over one period (migration 0004), from its configured time zone.

    The ``report_*`` views bucket a visit by the local hour and day at the offset whose period
    holds its start; a store without rows is bucketed in UTC. Written by
    ``storage.report_settings.write_store_time_zones`` (``audience dashboards provision``).
    """

    __tablename__ = "store_utc_offsets"

    store_id: Mapped[str] = mapped_column(String, primary_key=True)
    valid_from: Mapped[datetime] = mapped_column(primary_key=True)
    valid_until: Mapped[datetime]
    utc_offset_min: Mapped[int] = mapped_column(Integer)
    time_zone: Mapped[str] = mapped_column(String)


class ShareEstimateRow(Base):
    """A published share with its 90% interval (migration 0009), for the dashboards.

    Written by ``audience dashboards shares`` from the published cells of one store and period
    (``reports.dashboards.shares``); read through the ``report_share_estimates`` view, which
    shows only the rows computed with the current k and time zone.
    """

    __tablename__ = "share_estimates"
    __table_args__ = (CheckConstraint("k >= 2", name="k_at_least_2"),)

    store_id: Mapped[str] = mapped_column(String, primary_key=True)
    first_day: Mapped[date] = mapped_column(Date, primary_key=True)  #: store-local
    day: Mapped[date] = mapped_column(Date, primary_key=True)  #: the period's last day
    head: Mapped[str] = mapped_column(String, primary_key=True)  #: "Age brackets", ...
    label: Mapped[str] = mapped_column(String, primary_key=True)
    period: Mapped[str] = mapped_column(String)  #: "2026-12-07" or "2026-11-10 to 2026-12-07"
    visits: Mapped[int] = mapped_column(Integer)  #: shown labelled visits with this label
    share: Mapped[float] = mapped_column(Float)  #: corrected share of the labelled visits
    share_low: Mapped[float] = mapped_column(Float)
    share_high: Mapped[float] = mapped_column(Float)
    share_text: Mapped[str] = mapped_column(String)  #: "52% (45-59%)", as the report prints
    corrected: Mapped[bool] = mapped_column(Boolean)  #: False: sampling error only
    row_order: Mapped[int] = mapped_column(BigInteger)  #: larger first: newest, then labels
    k: Mapped[int] = mapped_column(Integer)
    time_zone: Mapped[str] = mapped_column(String)
    computed_at: Mapped[datetime]


# Columns the sink writes from a Visit (everything except the surrogate id and created_at).
VISIT_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in VisitRow.__table__.columns if c.name not in ("id", "created_at"))

# Reporting views (migrations 0002 and 0004), typed for reading. Not part of Base.metadata: they are
# created by raw SQL per dialect and must never be created as tables.
VIEWS = MetaData()

visits_hourly = Table(
    "visits_hourly", VIEWS,
    Column("store_id", String), Column("camera_id", String), Column("hour", UTCDateTime()),
    Column("visits", Integer), Column("avg_dwell_s", Float),
)


def _daily(name: str, key: str) -> Table:
    return Table(name, VIEWS, Column("store_id", String), Column("day", Date),
                 Column(key, String), Column("visits", Integer))


visits_daily_age = _daily("visits_daily_age", "age_bracket")
visits_daily_gender = _daily("visits_daily_gender", "gender")
visits_daily_emotion = _daily("visits_daily_emotion", "emotion")


# k-suppressed views (migration 0004): one row per published cell, per store and camera. Hours
# and days are store-local (wall clock, no time zone): see storage.timezones.
def _cells(name: str, *columns: Column[object]) -> Table:
    return Table(name, VIEWS, Column("store_id", String), Column("camera_id", String), *columns)


report_visits_hourly = _cells(
    "report_visits_hourly", Column("hour", DateTime()), Column("day", Date),
    Column("visits", Integer), Column("avg_dwell_s", Float))
report_visits_daily = _cells(
    "report_visits_daily", Column("day", Date), Column("visits", Integer),
    Column("avg_dwell_s", Float))
report_dwell_daily = _cells(
    "report_dwell_daily", Column("day", Date), Column("dwell_band", String),
    Column("band_order", Integer), Column("visits", Integer))
report_age_daily = _cells(
    "report_age_daily", Column("day", Date), Column("age_bracket", String),
    Column("visits", Integer))
report_gender_daily = _cells(
    "report_gender_daily", Column("day", Date), Column("gender", String),
    Column("visits", Integer))
report_emotion_daily = _cells(
    "report_emotion_daily", Column("day", Date), Column("emotion", String),
    Column("visits", Integer))
report_ethnicity_daily = _cells(
    "report_ethnicity_daily", Column("day", Date), Column("ethnicity", String),
    Column("visits", Integer))
# Migration 0008: passers-by by whether they looked ('watcher', 'not watching', 'unknown').
report_attention_daily = _cells(
    "report_attention_daily", Column("day", Date), Column("looked", String),
    Column("visits", Integer), Column("avg_attention_s", Float))
# Migration 0009: the share estimates of the current k and time zone (ShareEstimateRow).
report_share_estimates = Table(
    "report_share_estimates", VIEWS, Column("store_id", String), Column("first_day", Date),
    Column("day", Date), Column("period", String), Column("head", String),
    Column("label", String), Column("visits", Integer), Column("share", Float),
    Column("share_low", Float), Column("share_high", Float), Column("share_text", String),
    Column("corrected", Boolean), Column("row_order", BigInteger),
    Column("computed_at", UTCDateTime()))

__all__ = [
    "Base", "CameraRow", "ReportSettingsRow", "StoreRow", "StoreUtcOffsetRow", "UTCDateTime",
    "VIEWS", "VISIT_COLUMNS", "VisitRow", "report_age_daily", "report_attention_daily",
    "report_dwell_daily", "ShareEstimateRow", "report_share_estimates",
    "report_emotion_daily", "report_ethnicity_daily", "report_gender_daily", "report_visits_daily",
    "report_visits_hourly", "visits_daily_age", "visits_daily_emotion", "visits_daily_gender",
    "visits_hourly",
]
