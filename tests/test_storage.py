"""storage: migrations, sink, errors, views and the operator queries, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import typer
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import JSON, Engine, LargeBinary, bindparam, func, inspect, select, text
from sqlalchemy.types import ARRAY, TypeEngine
from typer.testing import CliRunner

from audience.core.errors import SERVICE_EXIT as STORAGE_EXIT
from audience.core.visit import Visit
from audience.storage import query
from audience.storage.config import DatabaseConfig
from audience.storage.db import (
    StorageError,
    alembic_config,
    current_revision,
    ensure_ready,
    head_revision,
    migrate,
    open_engine,
)
from audience.storage.schema import (
    Base,
    CameraRow,
    StoreRow,
    UTCDateTime,
    VisitRow,
    visits_daily_age,
    visits_daily_emotion,
    visits_daily_gender,
    visits_hourly,
)
from audience.storage.sink import VisitSink

MakeVisit = Callable[..., Visit]
T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


def count(engine: Engine, model: type[Base]) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


# -- config & migrations ----------------------------------------------------------------------

def test_config_defaults_and_strictness() -> None:
    cfg = DatabaseConfig()
    assert cfg.url == "sqlite:///audience.db" and cfg.batch_size == 50
    assert all(f.description for f in DatabaseConfig.model_fields.values())
    with pytest.raises(ValueError):
        DatabaseConfig(urll="x")  # type: ignore[call-arg]


def test_migrate_twice_is_idempotent(db_url: str) -> None:
    assert migrate(db_url) == head_revision()
    assert migrate(db_url) == head_revision()
    engine = open_engine(db_url)
    try:
        assert ensure_ready(engine) == head_revision()
        names = set(inspect(engine).get_table_names())
        assert {"stores", "cameras", "visits", "alembic_version"} <= names
        views = set(inspect(engine).get_view_names())
        assert {"visits_hourly", "visits_daily_age", "visits_daily_gender",
                "visits_daily_emotion"} <= views
    finally:
        engine.dispose()


def test_migrations_match_models(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []


def _binaryish(t: TypeEngine[object]) -> bool:
    name = type(t).__name__.upper()
    return isinstance(t, LargeBinary | ARRAY) or any(
        s in name for s in ("BLOB", "BYTEA", "BINARY", "ARRAY", "VECTOR"))


def test_schema_has_no_binary_or_embedding_columns(engine: Engine) -> None:
    insp = inspect(engine)
    for table in ("stores", "cameras", "visits"):
        for col in insp.get_columns(table):
            assert not _binaryish(col["type"]), f"{table}.{col['name']} is {col['type']}"
    for table in Base.metadata.tables.values():
        for col in table.columns:
            assert not _binaryish(col.type), f"{table.name}.{col.name}"
            if isinstance(col.type, JSON):  # only the small named score dicts
                assert col.name in ("emotion_scores", "ethnicity_scores")


def test_not_migrated_database_is_refused(db_url: str) -> None:
    engine = open_engine(db_url)
    try:
        head = head_revision()  # the latest migration, whoever added it
        with pytest.raises(StorageError, match=rf"not migrated \(at revision none, need {head}\)"
                           r".*audience db upgrade --db"):
            ensure_ready(engine)
        migrate(engine, revision="0001")
        with pytest.raises(StorageError, match=rf"at revision 0001, need {head}"):
            ensure_ready(engine)
        assert current_revision(engine) == "0001"
    finally:
        engine.dispose()


def test_0005_turns_json_null_scores_into_sql_null(db_url: str) -> None:
    engine = open_engine(db_url)
    try:
        migrate(engine, revision="0004")
        # Raw SQL, as the sink wrote before none_as_null: no scores as the JSON value null.
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO stores (id) VALUES ('s')"))
            conn.execute(text("INSERT INTO cameras (store_id, camera_id) VALUES ('s', 'c')"))
            conn.execute(text(
                "INSERT INTO visits (store_id, camera_id, track_id, started_at, ended_at, "
                "dwell_s, n_crops, emotion_scores, ethnicity, ethnicity_scores, model_version) "
                "VALUES ('s', 'c', :track, :t, :t, 1.0, 1, :emotion, :ethnicity, :scores, 'm')"
            ).bindparams(bindparam("t", type_=UTCDateTime())),
                [{"track": "old", "t": T0, "emotion": "null", "ethnicity": None,
                  "scores": "null"},
                 {"track": "scored", "t": T0, "emotion": '{"happy": 1.0}', "ethnicity": "x",
                  "scores": '{"x": 0.75, "y": 0.25}'}])

        def null_scores() -> list[tuple[str, bool, bool]]:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(
                    "SELECT track_id, ethnicity_scores IS NULL, emotion_scores IS NULL "
                    "FROM visits ORDER BY track_id"))]

        assert null_scores() == [("old", False, False), ("scored", False, False)]
        assert migrate(engine, revision="0005") == "0005"
        assert null_scores() == [("old", True, True), ("scored", False, False)]
        with engine.connect() as conn:
            scored = conn.execute(select(VisitRow.ethnicity_scores, VisitRow.emotion_scores)
                                  .where(VisitRow.track_id == "scored")).one()
        assert tuple(scored) == ({"x": 0.75, "y": 0.25}, {"happy": 1.0})

        cfg = alembic_config()  # downgrade: a no-op, the NULLs stay
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004")
        assert current_revision(engine) == "0004"
        assert null_scores() == [("old", True, True), ("scored", False, False)]
    finally:
        engine.dispose()


@pytest.mark.parametrize(("url", "shown", "hint"), [
    ("postgresql://postgres:s3cret@127.0.0.1:1/x", "127.0.0.1:1/x", "start PostgreSQL"),
    ("postgresql://postgres@127.0.0.1:5432/no_such_db_for_audience", "no_such_db_for_audience",
     "createdb"),
])
def test_unreachable_database_is_one_clear_line(url: str, shown: str, hint: str) -> None:
    engine = open_engine(url)
    try:
        for call in (lambda: ensure_ready(engine), lambda: migrate(engine),
                     lambda: VisitSink(engine).flush() or query.stores(engine)):
            with pytest.raises(StorageError) as info:
                call()
            msg = str(info.value)
            assert "\n" not in msg and shown in msg and hint in msg
            assert "s3cret" not in msg
            assert msg.startswith("cannot reach the database")
    finally:
        engine.dispose()


def test_unopenable_sqlite_path(tmp_path: object) -> None:
    engine = open_engine(f"sqlite:///{tmp_path}")  # a directory, not a file
    with pytest.raises(StorageError, match="cannot reach the database.*pass --db"):
        ensure_ready(engine)


@pytest.mark.parametrize(("url", "match"), [
    ("not a url", "invalid database URL"),
    ("mysql://u:pw@h/d", r"unsupported database mysql://u:\*\*\*@h/d"),
])
def test_bad_urls(url: str, match: str) -> None:
    with pytest.raises(StorageError, match=match):
        open_engine(url)


def test_missing_sqlite_file_not_created_for_read_only_use(tmp_path: object) -> None:
    path = f"{tmp_path}/sub/none.db"
    with pytest.raises(StorageError, match="no SQLite database at .*audience db upgrade"):
        open_engine(f"sqlite:///{path}", create=False)


# -- sink ----------------------------------------------------------------------------------

def test_upsert_twice_gives_same_rows(engine: Engine, make_visit: MakeVisit) -> None:
    visits = [make_visit(camera_id=f"cam-{i % 2}") for i in range(7)]
    with VisitSink(engine, batch_size=3) as sink:
        for v in visits:
            sink.add(v)
        assert sink.pending == 1  # 2 auto-flushes of 3
    assert sink.written == 7 and sink.pending == 0
    assert (count(engine, VisitRow), count(engine, StoreRow), count(engine, CameraRow)) \
        == (7, 1, 2)

    # Replay with a changed label: same rows, updated in place.
    visits[0].emotion = "surprise"
    with VisitSink(engine) as sink:
        for v in visits:
            sink.add(v)
    assert sink.written == 7
    assert count(engine, VisitRow) == 7
    with engine.connect() as conn:
        v = conn.execute(select(VisitRow.__table__)
                         .where(VisitRow.track_id == visits[0].track_id)).one()
    assert v.emotion == "surprise" and v.started_at == visits[0].started_at
    assert v.started_at.tzinfo is not None and v.emotion_scores == {"happy": 0.8, "neutral": 0.2}


def test_duplicate_visit_within_one_batch_last_wins(engine: Engine, make_visit: MakeVisit) -> None:
    a = make_visit(track_id="same", dwell_s=10.0)
    b = make_visit(track_id="same", dwell_s=20.0)
    with VisitSink(engine) as sink:
        sink.add(a)
        sink.add(b)
    assert sink.written == 1
    with engine.connect() as conn:
        assert conn.execute(select(VisitRow.dwell_s)).scalars().all() == [20.0]


@pytest.mark.parametrize("bad", [
    {"model_version": None},  # NOT NULL
    {"n_crops": None},  # NOT NULL
    {"store_id": None},  # NOT NULL, in the stores table first
    {"started_at": datetime(2024, 5, 6, 9, 0)},  # naive timestamp
])
def test_failing_batch_writes_nothing_and_keeps_buffer(
        engine: Engine, make_visit: MakeVisit, bad: dict[str, object]) -> None:
    sink = VisitSink(engine, batch_size=100)
    good = [make_visit(store_id="store-new", camera_id="cam-new") for _ in range(3)]
    for v in good[:2]:
        sink.add(v)
    sink.add(make_visit(**bad))
    sink.add(good[2])
    with pytest.raises(StorageError, match=r"writing 4 visits to .* failed \(.+\); nothing "
                       r"was written, the 4 visits stay buffered") as info:
        sink.flush()
    assert "\n" not in str(info.value)
    if "model_version" in bad:
        assert "model_version" in str(info.value)
    assert sink.pending == 4 and sink.written == 0
    # Nothing half-written: not even the store/camera rows from the same transaction.
    assert (count(engine, VisitRow), count(engine, StoreRow), count(engine, CameraRow)) \
        == (0, 0, 0)

    dropped = sink.drop_pending()
    assert len(dropped) == 4 and sink.pending == 0
    with sink:
        for v in good:
            sink.add(v)
    assert count(engine, VisitRow) == 3


def test_sink_context_does_not_flush_on_exception(engine: Engine, make_visit: MakeVisit) -> None:
    with pytest.raises(RuntimeError), VisitSink(engine) as sink:
        sink.add(make_visit())
        raise RuntimeError("boom")
    assert sink.pending == 1 and count(engine, VisitRow) == 0


def test_sink_rejects_bad_batch_size(engine: Engine) -> None:
    with pytest.raises(ValueError):
        VisitSink(engine, batch_size=0)


# -- views & queries -----------------------------------------------------------------------

def _write(engine: Engine, visits: list[Visit]) -> None:
    with VisitSink(engine) as sink:
        for v in visits:
            sink.add(v)


def test_hourly_view_counts(engine: Engine, make_visit: MakeVisit) -> None:
    at = lambda h, m: T0 + timedelta(hours=h, minutes=m)  # noqa: E731
    _write(engine, [
        make_visit(started_at=at(0, 0), dwell_s=10.0),
        make_visit(started_at=at(0, 59), dwell_s=30.0),
        make_visit(started_at=at(0, 30), camera_id="cam-2", dwell_s=5.0),
        make_visit(started_at=at(2, 15), dwell_s=60.0),
        make_visit(started_at=at(2, 15), store_id="other"),
        # 23:30 at UTC-2 is 01:30 UTC the next day: the view buckets by UTC.
        make_visit(started_at=datetime.fromisoformat("2024-05-06T23:30:00-02:00")),
    ])
    v = visits_hourly.c
    with engine.connect() as conn:
        rows = conn.execute(select(v.camera_id, v.hour, v.visits, v.avg_dwell_s)
                            .where(v.store_id == "store-1")
                            .order_by(v.hour, v.camera_id)).all()
    assert [(c, h, n, pytest.approx(d)) for c, h, n, d in rows] == [
        ("cam-1", at(0, 0), 2, 20.0),
        ("cam-2", at(0, 0), 1, 5.0),
        ("cam-1", at(2, 0), 1, 60.0),
        ("cam-1", datetime(2024, 5, 7, 1, 0, tzinfo=UTC), 1, 30.0),
    ]
    assert all(h.tzinfo is not None for _, h, _, _ in rows)


def test_daily_views(engine: Engine, make_visit: MakeVisit) -> None:
    _write(engine, [make_visit(started_at=T0 + timedelta(hours=h), age=a, gender=g, emotion=e)
                    for h, a, g, e in [(0, 20, "male", "happy"), (1, 21, "female", "happy"),
                                       (30, 70, "male", "sad"), (31, 20, None, None)]])
    day1, day2 = T0.date(), T0.date() + timedelta(days=1)
    with engine.connect() as conn:
        def rows(view, key):  # type: ignore[no-untyped-def]
            c = view.c
            stmt = select(c.day, c[key], c.visits).where(c.store_id == "store-1")
            return sorted(conn.execute(stmt).all(), key=lambda r: (r[0], r[1] or ""))
        assert rows(visits_daily_age, "age_bracket") == [
            (day1, "18-24", 2), (day2, "18-24", 1), (day2, "65+", 1)]
        assert rows(visits_daily_gender, "gender") == [
            (day1, "female", 1), (day1, "male", 1), (day2, None, 1), (day2, "male", 1)]
        assert rows(visits_daily_emotion, "emotion") == [
            (day1, "happy", 2), (day2, None, 1), (day2, "sad", 1)]


@pytest.mark.parametrize(("n", "k"), [(4, 5), (1, 2), (9, 10)])
def test_visit_total_suppresses_a_small_store(engine: Engine, make_visit: MakeVisit,
                                              n: int, k: int) -> None:
    _write(engine, [make_visit(started_at=T0 + timedelta(minutes=i)) for i in range(n)])
    assert query.visit_total(engine, "store-1", k=k) is None
    assert query.visit_total(engine, "store-1", k=1) == n  # k=1 turns suppression off


def test_visit_total_uses_the_window(engine: Engine, make_visit: MakeVisit) -> None:
    _write(engine, [make_visit(started_at=T0 + timedelta(days=d, minutes=i))
                    for d, n in [(0, 10), (3, 3)] for i in range(n)])
    later = T0 + timedelta(days=2)
    assert query.visit_total(engine, "store-1") == 13
    assert query.visit_total(engine, "store-1", since=later) is None
    assert query.visit_total(engine, "store-1", until=later) == 10
    # Whole UTC hours: 09:40 to 09:50 is the hour 09:00-10:00, which holds all 10.
    assert query.visit_total(engine, "store-1", since=T0 + timedelta(minutes=40),
                             until=T0 + timedelta(minutes=50)) == 10


def test_empty_store_and_store_list(engine: Engine, make_visit: MakeVisit) -> None:
    assert query.stores(engine) == []
    assert query.visit_total(engine, "nowhere") == 0
    _write(engine, [make_visit(store_id="b"), make_visit(store_id="a")])
    assert query.stores(engine) == ["a", "b"]


def test_visit_total_validates_arguments(engine: Engine) -> None:
    with pytest.raises(ValueError, match="k must be"):
        query.visit_total(engine, "s", k=0)
    with pytest.raises(ValueError, match="naive"):
        query.visit_total(engine, "s", since=datetime(2024, 1, 1))


def test_visit_total_on_unmigrated_database(db_url: str) -> None:
    engine = open_engine(db_url)
    try:
        with pytest.raises(StorageError, match="audience db upgrade"):
            query.visit_total(engine, "s")
    finally:
        engine.dispose()


# -- CLI -------------------------------------------------------------------------------------

def _app() -> typer.Typer:
    from audience.cli import app

    return app


def test_cli_upgrade_and_check(db_url: str) -> None:
    runner = CliRunner()
    res = runner.invoke(_app(), ["db", "check", "--db", db_url])
    assert res.exit_code == STORAGE_EXIT and "audience db upgrade" in res.stderr
    assert "Traceback" not in res.output
    res = runner.invoke(_app(), ["db", "upgrade", "--db", db_url])
    assert res.exit_code == 0, res.output
    assert f"revision {head_revision()} (latest)" in res.stdout
    res = runner.invoke(_app(), ["db", "check", "--db", db_url])
    assert res.exit_code == 0 and "reachable" in res.stdout


def test_cli_unreachable_is_one_line() -> None:
    res = CliRunner().invoke(_app(), ["db", "upgrade", "--db",
                                      "postgresql://postgres:pw@127.0.0.1:1/x"])
    assert res.exit_code == STORAGE_EXIT
    assert res.stderr.count("\n") == 1 and "cannot reach the database" in res.stderr
    assert ":pw@" not in res.stderr and "Traceback" not in res.output
