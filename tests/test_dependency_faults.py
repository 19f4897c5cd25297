"""Nothing lost when a dependency fails: each fault injected into the real PostgreSQL (the
shared server, or a cluster of the test's own for stop and freeze) and the real broker
(tansu). Each test sends visits before, during and after the fault and counts them in the
database afterwards: 0 lost, 0 duplicated. The outages are scaled down from the operator's
30 s / 60 s through the retry settings (database.retry_max_s, timeouts), which changes how
often the worker knocks, not what it does. docs/operations.md carries the figures."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import _pg_database
from kafka import KafkaConsumer
from kafka_broker import Tansu, durable_broker, kafka_broker, wait_until  # noqa: F401
from pg_cluster import PgCluster, pg_cluster  # noqa: F401
from sqlalchemy import create_engine, make_url, text
from test_kafka import kafka_cfg, produce, utk_tracks

from audience.core.face import Track
from audience.core.health import serve
from audience.core.kafka_config import KafkaConfig
from audience.core.kafka_io import ensure_topics
from audience.core.local_broker import free_port
from audience.inference.analyzer import FaceAnalyzer
from audience.inference.config import AnalyzerConfig
from audience.inference.worker import InferenceWorker
from audience.ingest.publisher import TrackPublisher
from audience.storage.config import DatabaseConfig
from audience.storage.db import StorageError, migrate, open_engine

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

# Short waits so that a 6-10 s outage sees several retries; the code paths are the defaults'.
FAST = DatabaseConfig(statement_timeout_s=3, connect_timeout_s=2, write_timeout_s=4,
                      retry_max_s=1, outage_deadline_s=300)
HOLD_S = 6  # how long each outage lasts in these tests


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer(AnalyzerConfig(threads=1))


class Worker:
    """An in-process inference worker with its /healthz and /livez on a free port."""

    def __init__(self, cfg: KafkaConfig, analyzer: FaceAnalyzer, url: str,
                 db: DatabaseConfig = FAST) -> None:
        self.engine = open_engine(url, statement_timeout_s=db.statement_timeout_s,
                                  connect_timeout_s=db.connect_timeout_s)
        self.worker = InferenceWorker(cfg, analyzer, self.engine, database=db)
        self.port = free_port()
        self.server = serve(self.worker.metrics.registry, self.port, self.worker.ready,
                            alive=self.worker.alive)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            self.error = exc

    def health(self, path: str = "/healthz") -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def stop(self) -> None:
        self.worker.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        if self.server:
            self.server.shutdown()
        self.engine.dispose()


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for w in started:
        if w.thread.is_alive():
            w.stop()


def stored_counts(url: str) -> dict[str, int]:
    """track id -> rows; {} while the database cannot be read."""
    engine = open_engine(url, connect_timeout_s=2)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT track_id, count(*) FROM visits GROUP BY track_id"))
            return {r[0]: int(r[1]) for r in rows}
    except Exception:  # noqa: BLE001 - down or frozen: nothing readable now
        return {}
    finally:
        engine.dispose()


def tally(url: str, sent: list[Track]) -> dict[str, int]:
    """sent / stored / lost / duplicated, as in the fault table."""
    got = stored_counts(url)
    ids = {t.track_id for t in sent}
    return {"sent": len(ids), "stored": sum(1 for i in ids if i in got),
            "lost": sum(1 for i in ids if i not in got),
            "duplicated": sum(n - 1 for n in got.values() if n > 1) + len(set(got) - ids)}


def dlq_count(cfg: KafkaConfig) -> int:
    consumer = KafkaConsumer(cfg.dlq_topic, bootstrap_servers=cfg.bootstrap_servers,
                             auto_offset_reset="earliest", consumer_timeout_ms=2000)
    try:
        return sum(1 for _ in consumer)
    finally:
        consumer.close()


def report(name: str, figures: dict[str, int]) -> None:
    print(f"FAULT {name}: {json.dumps(figures)}")  # noqa: T201 - the fault table's source


def wait_stored(url: str, sent: list[Track], timeout_s: float) -> None:
    ids = {t.track_id for t in sent}
    order = {t.track_id: i for i, t in enumerate(sent)}
    wait_until(lambda: ids <= set(stored_counts(url)), timeout_s,
               f"{len(ids)} visits stored (missing: sent #"
               f"{sorted(order[i] for i in ids - set(stored_counts(url)))})")


def _admin(url: str) -> Any:
    return create_engine(make_url(url).set(drivername="postgresql+psycopg2",
                                           database="postgres"),
                         isolation_level="AUTOCOMMIT")


def _cluster_db(cluster: PgCluster) -> str:
    admin = _admin(cluster.url)
    with admin.connect() as conn:
        conn.execute(text('CREATE DATABASE "audience"'))
    admin.dispose()
    url = cluster.url.rsplit("/", 1)[0] + "/audience"
    migrate(url)
    return url


def _outage_seen(w: Worker) -> None:
    wait_until(lambda: w.worker.outage_since is not None, 30, "the worker to see the outage")
    assert w.health() == 503  # not ready: the load balancer and the operator see it
    assert w.health("/livez") == 200  # but alive: restarting it would not help


def test_read_only_database_holds_visits_and_resumes(
        kafka_broker: str, analyzer: FaceAnalyzer, workers: list[Worker]) -> None:  # noqa: F811
    """ALTER DATABASE ... SET default_transaction_read_only=on (+ its open connections ended): the
    same refusal as a full disk, a revoked INSERT or a standby after failover."""
    for url in _pg_database():
        migrate(url)
        name = make_url(url).database
        cfg = kafka_cfg(kafka_broker, partitions=2)
        tracks = utk_tracks(30)
        workers.append(w := Worker(cfg, analyzer, url))
        produce(cfg, tracks[:10])
        wait_stored(url, tracks[:10], 60)
        admin = _admin(url)
        try:
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" SET '
                                  "default_transaction_read_only = on"))
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = :d AND pid <> pg_backend_pid()"), {"d": name})
            produce(cfg, tracks[10:20])
            _outage_seen(w)
            time.sleep(HOLD_S)
            assert w.worker.dead == 0 and w.thread.is_alive() and w.health() == 503
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))
        finally:
            admin.dispose()
        produce(cfg, tracks[20:])
        wait_stored(url, tracks, 60)
        wait_until(lambda: w.health() == 200, 20, "/healthz 200 again")
        figures = tally(url, tracks)
        w.stop()
        report("read-only", figures | {"dead_lettered": dlq_count(cfg)})
        assert figures["lost"] == 0 and figures["duplicated"] == 0
        assert dlq_count(cfg) == 0


def test_database_stopped_holds_visits_and_resumes(
        kafka_broker: str, analyzer: FaceAnalyzer, workers: list[Worker],  # noqa: F811
        pg_cluster: PgCluster) -> None:  # noqa: F811
    url = _cluster_db(pg_cluster)
    cfg = kafka_cfg(kafka_broker, partitions=2)
    tracks = utk_tracks(30)
    workers.append(w := Worker(cfg, analyzer, url))
    produce(cfg, tracks[:10])
    wait_stored(url, tracks[:10], 60)
    pg_cluster.stop()
    produce(cfg, tracks[10:20])
    _outage_seen(w)
    time.sleep(HOLD_S)
    assert w.worker.dead == 0 and w.thread.is_alive()
    pg_cluster.start()
    produce(cfg, tracks[20:])
    wait_stored(url, tracks, 60)
    figures = tally(url, tracks)
    w.stop()
    report("stopped", figures | {"dead_lettered": dlq_count(cfg)})
    assert figures["lost"] == 0 and figures["duplicated"] == 0 and dlq_count(cfg) == 0


def test_database_frozen_holds_visits_and_resumes(
        kafka_broker: str, analyzer: FaceAnalyzer, workers: list[Worker],  # noqa: F811
        pg_cluster: PgCluster) -> None:  # noqa: F811
    """SIGSTOP of the postmaster and every backend: the kernel still accepts and acknowledges
    the TCP packets, so only a client-side limit (the write watchdog) unblocks the write."""
    url = _cluster_db(pg_cluster)
    cfg = kafka_cfg(kafka_broker, partitions=2)
    tracks = utk_tracks(30)
    workers.append(w := Worker(cfg, analyzer, url))
    produce(cfg, tracks[:10])
    wait_stored(url, tracks[:10], 60)
    pg_cluster.freeze()
    try:
        produce(cfg, tracks[10:20])
        wait_until(lambda: w.health() == 503, 30, "/healthz 503 while the write is blocked")
        time.sleep(HOLD_S)
        assert w.worker.dead == 0 and w.thread.is_alive()
        assert w.health("/livez") == 200
    finally:
        pg_cluster.thaw()
    produce(cfg, tracks[20:])
    wait_stored(url, tracks, 60)
    figures = tally(url, tracks)
    w.stop()
    report("frozen", figures | {"dead_lettered": dlq_count(cfg),
                                "writes_broken_off": w.worker.watchdog.fired})
    assert figures["lost"] == 0 and figures["duplicated"] == 0 and dlq_count(cfg) == 0


def test_outage_past_the_deadline_exits_3_and_loses_nothing(
        kafka_broker: str, analyzer: FaceAnalyzer, workers: list[Worker],  # noqa: F811
        pg_cluster: PgCluster) -> None:  # noqa: F811
    """After database.outage_deadline_s the worker gives up (exit 3) without committing: the
    next worker gets the held visits."""
    url = _cluster_db(pg_cluster)
    cfg = kafka_cfg(kafka_broker, partitions=1)
    tracks = utk_tracks(10)
    short = FAST.model_copy(update={"outage_deadline_s": 3})
    pg_cluster.stop()
    workers.append(w := Worker(cfg, analyzer, url, short))
    produce(cfg, tracks)
    w.thread.join(60)
    assert isinstance(w.error, StorageError) and w.error.exit_code == 3
    assert "giving up after database.outage_deadline_s" in str(w.error)
    pg_cluster.start()
    workers.append(Worker(cfg, analyzer, url))
    wait_stored(url, tracks, 90)
    figures = tally(url, tracks)
    assert figures["lost"] == 0 and figures["duplicated"] == 0 and dlq_count(cfg) == 0


# -- the broker ---------------------------------------------------------------------------
def _memory_broker(tmp_path: Path) -> Iterator[Tansu]:
    broker = Tansu(tmp_path)
    broker.start()
    yield broker
    broker.stop()


@pytest.mark.parametrize("storage", ["memory", "durable"])
def test_broker_killed_and_restarted_loses_no_track(
        storage: str, analyzer: FaceAnalyzer, workers: list[Worker],  # noqa: F811
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """kill -9 of the broker while a camera publishes, back after a few seconds (in memory:
    every topic gone; on S3: kept). The camera's tracks wait in its buffer, its /healthz says
    503 meanwhile, a new producer delivers them; the worker stores each visit once."""
    if storage == "durable":
        broker = request.getfixturevalue("durable_broker")
    else:
        broker = next(gen := _memory_broker(tmp_path))
        request.addfinalizer(lambda: next(gen, None))
    for url in _pg_database():
        migrate(url)
        cfg = kafka_cfg(broker.bootstrap, partitions=2, publish_unhealthy_after_s=2)
        tracks = utk_tracks(30)
        publisher = TrackPublisher(cfg)
        workers.append(w := Worker(cfg, analyzer, url))
        try:
            for t in tracks[:10]:
                publisher.add(t)
            wait_stored(url, tracks[:10], 60)  # consumed before the kill (memory keeps nothing)
            broker.stop(signal.SIGKILL)
            for t in tracks[10:20]:  # the camera goes on while the broker is away
                publisher.add(t)
                time.sleep(0.1)
            wait_until(lambda p=publisher: not p.healthy(), 20,  # type: ignore[misc]
                       "the camera's /healthz to fail")
            assert publisher.pending == 10
            time.sleep(2)
            broker.start()
            for t in tracks[20:]:
                publisher.add(t)
            assert publisher.flush(60) == 0
            assert publisher.healthy() and publisher.failed == 0
        finally:
            publisher.close()
        if storage == "memory":
            # The in-memory broker lost its consumer groups with everything else; tansu's
            # coordinator then often loops in "SyncGroup failed due to coordinator
            # rebalance" for the members that rejoin. A worker (re)started after the broker
            # reads the new topic: what matters here is that every track reached it.
            w.stop()
            fresh = cfg.model_copy(update={"group_id": cfg.group_id + "-after"})
            workers.append(w := Worker(fresh, analyzer, url))
        wait_stored(url, tracks, 90)
        figures = tally(url, tracks)
        w.stop()
        report(f"broker kill -9 ({storage})",
               figures | {"producers_made": publisher.producers_made})
        assert figures["lost"] == 0 and figures["duplicated"] == 0


def test_audience_broker_restarts_on_its_port_at_once(tmp_path: Path) -> None:
    """After a stop the port is in TIME_WAIT for about a minute: a restart must not wait."""
    port = free_port()
    for attempt in range(2):
        log = tmp_path / f"broker-{attempt}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "audience", "broker", "--port",
                                     str(port)], stdout=out, stderr=subprocess.STDOUT)
        client = None
        try:
            wait_until(lambda p=proc, lg=log: "pass --bootstrap-servers" in lg.read_text()
                       or p.poll() is not None, 30, "the broker")
            assert proc.poll() is None, log.read_text()
            ensure_topics(KafkaConfig(bootstrap_servers=f"127.0.0.1:{port}"), ["t"])
            # a client still connected when the broker stops: the broker closes first, so its
            # port keeps a connection in TIME_WAIT
            client = socket.create_connection(("127.0.0.1", port))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            if client is not None:
                client.close()
