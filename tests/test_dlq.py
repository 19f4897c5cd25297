"""`audience dlq list` and `audience dlq replay`, against the real broker (tansu) and
PostgreSQL: visits the database refused for their own content (a CHECK constraint here) are
dead-lettered with their reason; after the constraint is fixed, a replay by reason stores them,
and a second replay stores nothing twice."""

from __future__ import annotations

import pytest
from conftest import _pg_database
from kafka import KafkaProducer
from kafka_broker import kafka_broker, wait_until  # noqa: F401
from sqlalchemy import text
from test_dependency_faults import Worker, analyzer, stored_counts, tally, workers  # noqa: F401
from test_kafka import kafka_cfg, produce, utk_tracks
from typer.testing import CliRunner

from audience.cli import app
from audience.inference.analyzer import FaceAnalyzer
from audience.storage.db import migrate, open_engine

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _sql(url: str, statement: str) -> None:
    engine = open_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def test_dead_letters_listed_and_replayed_exactly_once(
        kafka_broker: str, analyzer: FaceAnalyzer, workers: list[Worker],  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    for url in _pg_database():
        migrate(url)
        _sql(url, "ALTER TABLE visits ADD CONSTRAINT refuse_all CHECK (dwell_s < 0)")
        cfg = kafka_cfg(kafka_broker, partitions=2)
        for key, value in (("BOOTSTRAP_SERVERS", kafka_broker), ("TRACKS_TOPIC",
                                                                  cfg.tracks_topic),
                           ("DLQ_TOPIC", cfg.dlq_topic)):
            monkeypatch.setenv(f"AUDIENCE_KAFKA__{key}", value)
        tracks = utk_tracks(6)
        workers.append(w := Worker(cfg, analyzer, url))
        produce(cfg, tracks)
        garbage = KafkaProducer(bootstrap_servers=kafka_broker)
        garbage.send(cfg.tracks_topic, b"not a track")
        garbage.flush()
        garbage.close()
        wait_until(lambda: w.worker.dead == 7, 60, "7 dead letters")
        assert stored_counts(url) == {}
        runner = CliRunner()

        listed = runner.invoke(app, ["dlq", "list"])
        assert listed.exit_code == 0, listed.output
        assert f"7 dead letter(s) in {cfg.dlq_topic}" in listed.output
        assert listed.output.count("database refused the visit") == 6
        assert "refuse_all" in listed.output and "undecodable" in listed.output
        assert f"{cfg.tracks_topic}[" in listed.output

        _sql(url, "ALTER TABLE visits DROP CONSTRAINT refuse_all")  # the operator's fix
        dry = runner.invoke(app, ["dlq", "replay", "--reason", "Database Refused", "--dry-run"])
        assert "would replay 6 of 6 matching" in dry.output, dry.output
        for round_ in (1, 2):  # replaying twice stores nothing twice
            done = runner.invoke(app, ["dlq", "replay", "--reason", "database refused"])
            assert done.exit_code == 0, done.output
            assert "replayed 6 of 6 matching" in done.output
            wait_until(lambda r=round_: w.worker.stored == 6 * r, 60,  # type: ignore[misc]
                       f"replay {round_} stored")
        figures = tally(url, tracks)
        assert figures == {"sent": 6, "stored": 6, "lost": 0, "duplicated": 0}
        assert w.worker.dead == 7  # the garbage was not replayed (wrong reason)
