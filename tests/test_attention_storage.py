"""Attention with the visit: migration 0008 on SQLite and PostgreSQL, old rows still valid,
and the k-suppressed daily attention view."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import bindparam, inspect, text

from audience.core.visit import Visit
from audience.storage.db import (
    alembic_config,
    current_revision,
    head_revision,
    migrate,
    open_engine,
)
from audience.storage.schema import UTCDateTime
from audience.storage.sink import VisitSink

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


def _columns(engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("visits")}


def test_0008_adds_nullable_attention_and_keeps_old_rows(db_url: str) -> None:
    engine = open_engine(db_url)
    try:
        migrate(engine, revision="0005")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO stores (id) VALUES ('s')"))
            conn.execute(text("INSERT INTO cameras (store_id, camera_id) VALUES ('s', 'c')"))
            conn.execute(text(
                "INSERT INTO visits (store_id, camera_id, track_id, started_at, ended_at, "
                "dwell_s, n_crops, model_version) VALUES ('s', 'c', 'old', :t, :t, 1.0, 0, 'm')"
            ).bindparams(bindparam("t", type_=UTCDateTime())), {"t": T0})
        assert migrate(engine, revision="0008") == "0008"
        assert {"attention_s", "watcher"} <= _columns(engine)
        with VisitSink(engine) as sink:
            sink.add(Visit(store_id="s", camera_id="c", track_id="new", started_at=T0,
                           ended_at=T0 + timedelta(seconds=4), dwell_s=4.0, n_crops=0,
                           model_version="m", attention_s=1.6, watcher=True))
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT track_id, attention_s, watcher FROM visits "
                                     "ORDER BY track_id")).all()
        assert [(r[0], r[1], None if r[2] is None else bool(r[2])) for r in rows] == [
            ("new", 1.6, True), ("old", None, None)]
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0005")
        assert current_revision(engine) == "0005"
        assert not {"attention_s", "watcher"} & _columns(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM visits")).scalar_one() == 2
        assert migrate(engine) == head_revision()  # and up again, to the latest
    finally:
        engine.dispose()


def test_daily_attention_view_is_k_suppressed(engine, make_visit: Callable[..., Visit]) -> None:
    day2 = T0 + timedelta(days=1)
    visits = ([make_visit(watcher=True, attention_s=2.0 + i) for i in range(6)]
              + [make_visit(watcher=False, attention_s=0.2) for _ in range(5)]
              + [make_visit(watcher=None, attention_s=None) for _ in range(2)]
              # a second day: 4 watchers, 3 not watching: both under k=5 -> hidden
              + [make_visit(started_at=day2 + timedelta(minutes=i), watcher=i < 4,
                            attention_s=3.0) for i in range(7)])
    with VisitSink(engine) as sink:
        for v in visits:
            sink.add(v)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT day, looked, visits, avg_attention_s FROM "
                                 "report_attention_daily ORDER BY day, looked")).all()
    # Day 1: 'unknown' (2) is under k, and hidden alone (2 < k): the smallest shown cell,
    # 'not watching' (5), goes too; day 2 shows nothing.
    assert [(str(r[0])[:10], r[1], r[2], round(r[3], 2)) for r in rows] == [
        ("2024-05-06", "watcher", 6, 4.5)]


def test_attention_travels_on_the_wire_and_is_optional() -> None:
    import json

    import pytest

    from audience.core.face import Track
    from audience.core.wire import MessageError, decode_track, encode_track

    track = Track("cam-1", "store-1", "t1", 1000.0, 1004.0, 20, [], attention_s=1.6,
                  watcher=True)
    back = decode_track(encode_track(track))
    assert (back.attention_s, back.watcher) == (1.6, True)
    body = json.loads(encode_track(track))
    del body["attention_s"], body["watcher"]  # an older camera
    old = decode_track(json.dumps(body).encode())
    assert (old.attention_s, old.watcher) == (None, None)
    for bad in ({"watcher": "yes"}, {"attention_s": -1}, {"attention_s": "1"}):
        with pytest.raises(MessageError):
            decode_track(json.dumps({**body, **bad}).encode())


# -- k-suppression of the new published cells --------------------------------------------------


def test_attention_figures_are_sums_of_published_cells(engine, make_visit) -> None:
    from audience.storage.published import Window, attention, looked_hourly
    from audience.storage.report_settings import write_report_settings

    write_report_settings(engine, 5, False)
    at = lambda h, m: T0.replace(hour=h, minute=m)  # noqa: E731
    visits = ([make_visit(started_at=at(9, i), watcher=True, attention_s=2.0) for i in range(6)]
              + [make_visit(started_at=at(9, 30), watcher=False, attention_s=0.0)]
              + [make_visit(started_at=at(10, i), watcher=True, attention_s=4.0)
                 for i in range(5)]
              + [make_visit(started_at=at(10, 30 + i), watcher=False, attention_s=0.2)
                 for i in range(5)])
    with VisitSink(engine) as sink:
        for v in visits:
            sink.add(v)
    a = attention(engine, "store-1", Window(), 5)
    # The day: 11 watchers, 6 not watching: both shown.
    assert (a.passers_by, a.watchers, a.looked.counts) == (
        17, 11, {"watcher": 11, "not watching": 6})
    assert a.mean_attention_s == (6 * 2.0 + 5 * 4.0) / 11
    hourly = looked_hourly(engine, "store-1", Window(), 5)
    # 09:00 holds 6 watchers and 1 not watching: the 1 is hidden, and the 6 with it (else the
    # hour's total, 7, which footfall publishes, would give the 1 away); 10:00's 5 not
    # watching go too (else the day's 6 not watching, which the daily figures publish, would);
    # and 10:00's 5 watchers (else the day's 11 watchers less 5 give 09:00's 6, and 09:00's
    # footfall of 7 less 6 its one visitor not watching: `privacy audit` finds it).
    assert hourly.counts == {}
    assert hourly.suppressed == 17 and hourly.total == 17


def test_watchers_per_hour_are_shown_where_nothing_is_given_away(engine, make_visit) -> None:
    from audience.storage.published import Window, looked_hourly

    at = lambda h, m: T0.replace(hour=h, minute=m)  # noqa: E731
    with VisitSink(engine) as sink:
        for h, watchers, others in ((9, 6, 5), (10, 5, 7)):
            for i in range(watchers + others):
                sink.add(make_visit(started_at=at(h, i), watcher=i < watchers,
                                    attention_s=2.0 if i < watchers else 0.1))
    hourly = looked_hourly(engine, "store-1", Window(), 5)
    assert hourly.counts == {
        ("2024-05-06 09:00:00", "watcher"): 6, ("2024-05-06 09:00:00", "not watching"): 5,
        ("2024-05-06 10:00:00", "watcher"): 5, ("2024-05-06 10:00:00", "not watching"): 7}
    assert hourly.suppressed == 0 and hourly.total == 23


def test_a_small_day_publishes_no_attention(engine, make_visit) -> None:
    from audience.storage.published import Window, attention, looked_hourly

    with VisitSink(engine) as sink:
        for i in range(4):
            sink.add(make_visit(watcher=True, attention_s=9.0, started_at=T0.replace(minute=i)))
    a = attention(engine, "store-1", Window(), 5)
    assert (a.passers_by, a.watchers, a.rate, a.mean_attention_s) == (0, 0, None, None)
    assert looked_hourly(engine, "store-1", Window(), 5).counts == {}


def test_the_audit_covers_watchers_per_hour(engine, db_url: str, make_visit, monkeypatch) -> None:
    """`privacy audit` bounds the (hour, looked) cells with footfall per hour and the looked
    totals: clean with the rule the report uses, a breach with a grid hidden on its own."""
    from typer.testing import CliRunner

    import audience.storage.audit as audit
    from audience.cli import app
    from audience.storage.published import hidden_cells, margins_of

    at = lambda h, m: T0.replace(hour=h, minute=m)  # noqa: E731
    with VisitSink(engine) as sink:  # the day of test_attention_figures_are_sums_of_published_cells
        for v in ([make_visit(started_at=at(9, i), watcher=True, attention_s=2.0)
                   for i in range(6)]
                  + [make_visit(started_at=at(9, 30), watcher=False, attention_s=0.0)]
                  + [make_visit(started_at=at(10, i), watcher=True, attention_s=4.0)
                     for i in range(5)]
                  + [make_visit(started_at=at(10, 30 + i), watcher=False, attention_s=0.2)
                     for i in range(5)]):
            sink.add(v)
    args = ["privacy", "audit", "--store", "store-1", "--db", db_url]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "no cell or group is bounded to 1..4 visits" in res.stdout
    # Rules 1 and 2 per row and column alone show 10:00's 5 watchers: the day's 11 watchers
    # less 5 are 09:00's 6, and 09:00's footfall of 7 less 6 is its one visitor not watching.
    def per_group(grid, k):
        return hidden_cells(grid, k, margins_of(2))

    monkeypatch.setattr(audit, "hourly_hidden", per_group)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1, res.output
    assert "BREACH 2024-05-06 cam-1: hour,looked 2024-05-06 09:00:00/not watching (1 visits) " \
        "is bounded to 1..1" in res.stdout, res.stdout
