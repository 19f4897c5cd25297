"""The scaled-out pipeline against a real broker (tansu) and real PostgreSQL: message format,
camera worker -> Kafka -> inference workers -> database, dead letters, crashes, restarts."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka_broker import Tansu, durable_broker, free_port, kafka_broker, wait_until  # noqa: F401
from sqlalchemy import text

from audience.core.face import Face, Track
from audience.core.health import serve
from audience.core.kafka_config import KafkaConfig
from audience.core.kafka_io import BrokerError, ensure_topics, make_producer
from audience.core.wire import SCHEMA, MessageError, decode_track, encode_track
from audience.inference.analyzer import FaceAnalyzer
from audience.inference.config import AnalyzerConfig
from audience.inference.worker import InferenceWorker
from audience.ingest.simulate import ground_truth, plan, publish
from audience.pipeline import run_pipeline
from audience.settings import AppConfig, ConfigError, apply_overrides, load_config
from audience.storage.db import migrate, open_engine

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "ingest" / "assets" / "face-demographics-walking-and-pause.gif"
UTK = ROOT.parent / "shared" / "datasets" / "utkface" / "crop_part1"
POSTGRES = [pytest.mark.slow, pytest.mark.postgres,
            pytest.mark.parametrize("db_url", ["postgres"], indirect=True)]


def postgres(fn: Callable) -> Callable:
    for mark in reversed(POSTGRES):
        fn = mark(fn)
    return fn


# -- helpers -----------------------------------------------------------------------------------
def textured_crop(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (12, 12), dtype=np.uint8)
    return cv2.resize(small, (48, 48), interpolation=cv2.INTER_CUBIC)


def make_track(n_crops: int = 3, camera: str = "cam-1", store: str = "store-1",
               crops: list[np.ndarray] | None = None, t0: float = 1_715_000_000.0) -> Track:
    crops = crops if crops is not None else [textured_crop(i) for i in range(n_crops)]
    faces = [Face(box=np.array([10, 10, 80, 80], np.float32),
                  landmarks=np.zeros((5, 2), np.float32), score=0.9, timestamp=t0 + i,
                  quality=1.0 - i * 0.1, crop=c) for i, c in enumerate(crops)]
    return Track(camera_id=camera, store_id=store, track_id=uuid.uuid4().hex, started_at=t0,
                 ended_at=t0 + 3.5, n_detections=17, faces=faces)


def utk_tracks(n: int, cameras: int = 3) -> list[Track]:
    """Tracks built straight from UTKFace chips (no camera stage): many cheap messages."""
    names = sorted(p.name for p in UTK.iterdir())[:n]
    tracks = []
    for i, name in enumerate(names):
        gray = cv2.cvtColor(cv2.imread(str(UTK / name)), cv2.COLOR_BGR2GRAY)
        crop = cv2.resize(gray[20:180, 20:180], (48, 48), interpolation=cv2.INTER_AREA)
        tracks.append(make_track(crops=[crop, cv2.flip(crop, 1)], camera=f"cam-{i % cameras}",
                                 t0=1_715_000_000.0 + i))
    return tracks


def kafka_cfg(bootstrap: str, **over: Any) -> KafkaConfig:
    """Fresh topics and group per test: tests share one broker."""
    tag = uuid.uuid4().hex[:8]
    values: dict[str, Any] = dict(
        bootstrap_servers=bootstrap, tracks_topic=f"tracks-{tag}", dlq_topic=f"dlq-{tag}",
        group_id=f"infer-{tag}", session_timeout_ms=6000, batch_max_wait_ms=200,
        metrics_port=0)
    return KafkaConfig(**(values | over))


def count_visits(url: str) -> tuple[int, int]:
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT count(*), count(DISTINCT (store_id, camera_id, "
                                    "track_id)) FROM visits")).one()
    finally:
        engine.dispose()
    return int(row[0]), int(row[1])


def visits(url: str) -> list[dict]:
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM visits ORDER BY started_at")).mappings()
            return [dict(r) for r in rows]
    finally:
        engine.dispose()



def take(consumer: KafkaConsumer, n: int) -> list[Any]:
    """The first n messages (or fewer after consumer_timeout_ms of silence); closes it."""
    got = []
    for message in consumer:
        got.append(message)
        if len(got) == n:
            break
    time.sleep(0.5)  # one more would show up now
    got.extend(m for records in consumer.poll(timeout_ms=500).values() for m in records)
    consumer.close()
    return got


def produce(cfg: KafkaConfig, tracks: list[Track], per_s: float = 0.0) -> None:
    ensure_topics(cfg, [cfg.tracks_topic, cfg.dlq_topic])
    producer = make_producer(cfg, "test")
    for track in tracks:
        producer.send(cfg.tracks_topic, key=track.camera_id.encode(), value=encode_track(track))
        if per_s:
            time.sleep(1 / per_s)
    producer.flush()
    producer.close()


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer(AnalyzerConfig(threads=1))


class ThreadWorker:
    """An in-process inference worker (shares the module's analyzer: no model reload)."""

    def __init__(self, cfg: KafkaConfig, analyzer: FaceAnalyzer, db_url: str,
                 patch: Callable[[InferenceWorker], None] | None = None) -> None:
        self.engine = open_engine(db_url)
        self.worker = InferenceWorker(cfg, analyzer, self.engine)
        if patch:
            patch(self.worker)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.worker.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()
        self.engine.dispose()


@pytest.fixture
def thread_workers() -> Iterator[list[ThreadWorker]]:
    started: list[ThreadWorker] = []
    yield started
    for w in started:
        if w.thread.is_alive():
            w.stop()


# -- a. the message format ---------------------------------------------------------------------
def test_round_trip_keeps_metadata_and_crops() -> None:
    track = make_track(4)
    track.faces.append(Face(box=np.zeros(4, np.float32), landmarks=np.zeros((5, 2)),
                            score=0.5, crop=None))  # a face without a crop is not sent
    data = encode_track(track, produced_at=123.0)
    body = json.loads(data)
    assert body["schema"] == SCHEMA and body["produced_at"] == 123.0
    back = decode_track(data)
    for name in ("camera_id", "store_id", "track_id", "started_at", "ended_at", "n_detections"):
        assert getattr(back, name) == getattr(track, name)
    assert len(back.faces) == 4
    for a, b in zip(track.faces, back.faces, strict=False):
        assert b.crop.shape == (48, 48) and b.crop.dtype == np.uint8
        assert np.abs(a.crop.astype(int) - b.crop.astype(int)).mean() < 3  # JPEG q100
        assert b.quality == pytest.approx(a.quality) and b.timestamp == a.timestamp


def test_oversize_track_drops_worst_crops(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(0)  # noise: large PNGs
    track = make_track(crops=[rng.integers(0, 255, (48, 48), dtype=np.uint8) for _ in range(8)])
    full = len(encode_track(track))
    limit = full // 2
    data = encode_track(track, max_bytes=limit)
    assert len(data) <= limit
    back = decode_track(data)
    assert 0 < len(back.faces) < 8
    assert [f.quality for f in back.faces] == [f.quality for f in track.faces[:len(back.faces)]]
    assert "dropped" in caplog.text
    with pytest.raises(MessageError, match="without any crop"):
        encode_track(track, max_bytes=100)


def _body(**over: Any) -> bytes:
    body = json.loads(encode_track(make_track(1)))
    for key, value in over.items():
        if value is KeyError:
            body.pop(key)
        else:
            body[key] = value
    return json.dumps(body).encode()


def _png(img: np.ndarray) -> str:
    return base64.b64encode(cv2.imencode(".png", img)[1].tobytes()).decode()


def _jpeg(img: np.ndarray) -> str:
    return base64.b64encode(cv2.imencode(".jpg", img)[1].tobytes()).decode()


@pytest.mark.parametrize("shape", [(48, 48, 3), (48, 48)], ids=["colour", "gray"])
def test_crops_travel_losslessly(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    track = make_track(crops=[rng.integers(0, 255, shape, dtype=np.uint8) for _ in range(3)])
    back = decode_track(encode_track(track))
    for sent, got in zip(track.faces, back.faces, strict=True):
        assert got.crop.shape == shape and np.array_equal(sent.crop, got.crop)


def test_schema_1_messages_with_jpeg_crops_are_still_read() -> None:
    crop = np.full((48, 48), 128, np.uint8)
    body = json.loads(_body())
    body["schema"] = "audience.track/1"
    body["crops"] = [{"jpeg": _jpeg(crop), "quality": 0.5, "score": 0.9, "timestamp": 1.0}]
    (face,) = decode_track(json.dumps(body).encode()).faces
    assert face.crop.shape == (48, 48) and abs(int(face.crop.mean()) - 128) <= 1


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty message"),
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe\x00", "not valid JSON"),
    (b"[1, 2]", "not a JSON object"),
    (_body(schema="audience.track/9"), "unsupported schema"),
    (_body(schema=KeyError), "unsupported schema"),
    (_body(schema=[]), "unsupported schema"),
    (_body(track_id=KeyError), "missing field 'track_id'"),
    (_body(started_at="yesterday"), "'started_at' has the wrong type"),
    (_body(n_detections=True), "'n_detections' has the wrong type"),
    (_body(n_detections=-1), "'n_detections' is negative"),
    (_body(camera_id=""), "'camera_id' is not a valid id"),
    (_body(track_id="a\u0000b"), "'track_id' is not a valid id"),
    (_body(store_id="s" * 65), "'store_id' is not a valid id: 1 to 64"),
    (_body(started_at=1e300, ended_at=1e300), "'started_at' is not a plausible epoch"),
    (_body(ended_at=1.0), "ended_at is before started_at"),
    (_body(crops="none"), "'crops' must be a list"),
    (_body(crops=[{"quality": 1}]), "crop 0 must be an object"),
    (_body(crops=[{"jpeg": _jpeg(np.zeros((48, 48), np.uint8))}]), "base64 'png' string"),
    (_body(crops=[{"png": "%%%"}]), "not valid base64"),
    (_body(crops=[{"png": base64.b64encode(b"not a png").decode()}]), "not a decodable 8-bit PNG"),
    (_body(crops=[{"png": _png(np.zeros((64, 48), np.uint8))}]), "size 48x64, expected 48x48"),
    (_body(crops=[{"png": _png(np.zeros((48, 48, 4), np.uint8))}]), "4 channels, expected gray"),
    (_body(crops=[{"png": _png(np.zeros((48, 48), np.uint16))}]), "not a decodable 8-bit PNG"),
    (_body(crops=[{"png": _png(np.zeros((48, 48), np.uint8)), "quality": "x"}]),
     "must be a finite number"),
])
def test_malformed_messages_are_rejected_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        decode_track(data)


def test_kafka_config_section_and_retention_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert AppConfig().kafka.tracks_topic == "audience.tracks"
    monkeypatch.setenv("AUDIENCE_KAFKA__BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    assert load_config().kafka.bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    cfg = load_config()
    with pytest.raises(ConfigError, match="kafka.crops_retention_ms"):
        apply_overrides(cfg, {"kafka": {"crops_retention_ms": 2 * 3_600_000}})
    for name, field in KafkaConfig.model_fields.items():
        assert field.description, name


@pytest.mark.slow
def test_unreachable_broker_is_one_clear_line() -> None:
    cfg = KafkaConfig(bootstrap_servers=f"127.0.0.1:{free_port()}", connect_timeout_ms=1000)
    with pytest.raises(BrokerError, match="Kafka broker unreachable at 127.0.0.1:"):
        ensure_topics(cfg, ["t"])
    out = subprocess.run([sys.executable, "-m", "audience", "-q", "infer", "--db",
                          "sqlite://", "--bootstrap-servers", cfg.bootstrap_servers],
                         capture_output=True, text=True, timeout=60, cwd=ROOT,
                         env={**os.environ, "AUDIENCE_KAFKA__CONNECT_TIMEOUT_MS": "1000"})
    assert out.returncode == 3
    assert out.stderr.strip().startswith("error: Kafka broker unreachable"), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_metrics_port_in_use_is_a_config_error() -> None:
    import socket

    from prometheus_client import CollectorRegistry

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(ConfigError, match="cannot serve /metrics on port"):
            serve(CollectorRegistry(), s.getsockname()[1], lambda: True, host="127.0.0.1")


# -- b. the bundled clip, distributed vs embedded ----------------------------------------------
@postgres
def test_clip_distributed_equals_embedded(kafka_broker: str, db_url: str,  # noqa: F811
                                          analyzer: FaceAnalyzer, tmp_path: Path,
                                          thread_workers: list[ThreadWorker]) -> None:
    migrate(db_url)
    cfg = kafka_cfg(kafka_broker)
    config = tmp_path / "camera.yaml"
    config.write_text(yaml.safe_dump({
        "camera": {"source": str(CLIP), "store": "demo-store", "id": "entrance"},
        "kafka": cfg.model_dump()}))
    cam = subprocess.run([sys.executable, "-m", "audience", "-q", "camera", "--config",
                          str(config)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert cam.returncode == 0, cam.stderr
    assert "3 tracks published" in cam.stdout
    thread_workers.append(ThreadWorker(cfg, analyzer, db_url))
    wait_until(lambda: count_visits(db_url)[0] >= 3, 60, "3 visits in PostgreSQL")
    thread_workers[0].stop()

    embedded = f"sqlite:///{tmp_path / 'embedded.db'}"
    app = apply_overrides(load_config(), {
        "camera": {"source": str(CLIP), "store": "demo-store", "id": "entrance"},
        "database": {"url": embedded}})
    assert run_pipeline(app, analyzer=analyzer, progress=False).visits == 3

    def labels(url: str) -> list[tuple]:
        return sorted((v["gender"], v["emotion"], v["n_crops"], v["camera_id"], v["age"])
                      for v in visits(url))

    assert count_visits(db_url) == (3, 3)
    distributed, local = labels(db_url), labels(embedded)
    # Crops travel as JPEG (quality 100): labels must match, ages may move a little (and so
    # cross a bracket edge), never more than 2.5 years.
    assert [d[:4] for d in distributed] == [e[:4] for e in local]
    assert all(abs(d[4] - e[4]) <= 2.5 for d, e in zip(distributed, local, strict=True)), (
        distributed, local)


# -- c. dead letters ---------------------------------------------------------------------------
@postgres
def test_malformed_message_goes_to_dlq_and_worker_carries_on(
        kafka_broker: str, db_url: str, analyzer: FaceAnalyzer,  # noqa: F811
        thread_workers: list[ThreadWorker]) -> None:
    migrate(db_url)
    cfg = kafka_cfg(kafka_broker, partitions=1)
    ensure_topics(cfg, [cfg.tracks_topic, cfg.dlq_topic])
    good = utk_tracks(2)
    bad_size = _body(crops=[{"png": _png(np.zeros((64, 64), np.uint8))}])
    producer = KafkaProducer(bootstrap_servers=kafka_broker)
    producer.send(cfg.tracks_topic, key=b"cam-0", value=encode_track(good[0]))
    producer.send(cfg.tracks_topic, key=b"cam-0", value=b"{garbage")
    producer.send(cfg.tracks_topic, key=b"cam-0", value=bad_size)
    producer.send(cfg.tracks_topic, key=b"cam-0", value=encode_track(good[1]))
    producer.flush()
    producer.close()
    thread_workers.append(ThreadWorker(cfg, analyzer, db_url))
    w = thread_workers[0].worker
    port = free_port()
    server = serve(w.metrics.registry, port, lambda: True, host="127.0.0.1")
    wait_until(lambda: count_visits(db_url)[0] == 2 and w.dead == 2, 60, "2 visits, 2 dead")
    assert {v["track_id"] for v in visits(db_url)} == {t.track_id for t in good}
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    health = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz")
    server.shutdown()
    assert health.status == 200
    assert "audience_worker_dlq_total 2.0" in metrics
    assert 'audience_worker_messages_total{outcome="stored"} 2.0' in metrics
    assert "audience_worker_end_to_end_seconds_count 2.0" in metrics
    assert "audience_worker_consumer_lag" in metrics
    thread_workers[0].stop()
    # offsets committed past everything, the bad messages included
    probe = KafkaConsumer(bootstrap_servers=kafka_broker, group_id=cfg.group_id,
                          enable_auto_commit=False)
    assert probe.committed(TopicPartition(cfg.tracks_topic, 0)) == 4
    probe.close()

    dlq = KafkaConsumer(cfg.dlq_topic, bootstrap_servers=kafka_broker,
                        auto_offset_reset="earliest", consumer_timeout_ms=5000)
    dead = take(dlq, 2)
    assert len(dead) == 2
    reasons = [dict(m.headers)["error"].decode() for m in dead]
    assert "not valid JSON" in reasons[0] and "expected 48x48" in reasons[1]
    payloads = [json.loads(m.value) for m in dead]
    assert [p["reason"] for p in payloads] == reasons
    assert base64.b64decode(payloads[0]["original_b64"]) == b"{garbage"
    assert [p["offset"] for p in payloads] == [1, 2]


@pytest.mark.slow
def test_camera_stop_ends_open_tracks_and_publishes_them(kafka_broker: str) -> None:  # noqa: F811
    """SIGTERM sets the stop event: the visitor in view is ended, published and flushed."""
    from audience.ingest.camera import CameraStage
    from audience.ingest.publisher import TrackPublisher, publish_source
    from audience.ingest.simulate import frames

    cfg = AppConfig()
    cfg.kafka = kafka_cfg(kafka_broker)
    (p,) = plan(cameras=1, fps=5, duration_s=9, faces=UTK)  # 3 visitors
    stop = threading.Event()

    def source() -> Iterator[tuple[float, np.ndarray]]:
        for i, item in enumerate(frames(p, UTK)):
            if i == 20:  # 4 s: the second visitor is in view
                stop.set()
            yield item

    cam = cfg.camera.model_copy(update={"id": p.camera_id, "store": p.store_id})
    with TrackPublisher(cfg.kafka) as pub:
        summary = publish_source(CameraStage(cam), source(), pub, stop)
    assert summary.tracks == 2 and summary.failed == 0
    consumer = KafkaConsumer(cfg.kafka.tracks_topic, bootstrap_servers=kafka_broker,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    got = [decode_track(m.value) for m in take(consumer, 2)]
    assert len(got) == 2 and all(t.camera_id == p.camera_id and t.faces for t in got)


@postgres
def test_visit_the_database_refuses_is_dead_lettered_not_a_crash_loop(
        kafka_broker: str, db_url: str, analyzer: FaceAnalyzer,  # noqa: F811
        thread_workers: list[ThreadWorker], monkeypatch: pytest.MonkeyPatch) -> None:
    from audience.storage.db import StorageError

    migrate(db_url)
    cfg = kafka_cfg(kafka_broker, partitions=1, batch_max_wait_ms=1000)
    tracks = utk_tracks(3)
    produce(cfg, tracks)
    bad = tracks[1].track_id

    def patch(w: InferenceWorker) -> None:
        write = w._write

        def refusing(visits: list) -> None:  # stands in for e.g. a constraint violation
            if any(v.track_id == bad for v in visits):
                raise StorageError("value refused by the database")
            write(visits)

        w._write = refusing  # type: ignore[method-assign]

    thread_workers.append(ThreadWorker(cfg, analyzer, db_url, patch))
    w = thread_workers[0].worker
    wait_until(lambda: w.stored == 2 and w.dead == 1, 60, "2 stored, 1 dead-lettered")
    assert {v["track_id"] for v in visits(db_url)} == {tracks[0].track_id, tracks[2].track_id}


# -- d. crash of one worker of two -------------------------------------------------------------
def _scrape(port: int, name: str) -> float:
    try:
        text_ = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return -1.0
    for line in text_.decode().splitlines():
        if line.startswith((name + " ", name + "{")):
            return float(line.split()[-1])
    return -1.0 if name.endswith("lag") else 0.0


def _spawn_worker(config: Path, port: int, log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "audience", "infer", "--config",
                                 str(config), "--metrics-port", str(port)], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)


@postgres
def test_kill_9_of_one_of_two_workers_loses_and_duplicates_nothing(
        kafka_broker: str, db_url: str, tmp_path: Path) -> None:  # noqa: F811
    migrate(db_url)
    cfg = kafka_cfg(kafka_broker, batch_max_messages=8)
    ensure_topics(cfg, [cfg.tracks_topic, cfg.dlq_topic])
    config = tmp_path / "infer.yaml"
    config.write_text(yaml.safe_dump({"kafka": cfg.model_dump(), "database": {"url": db_url},
                                      "analyzer": {"threads": 1}}))
    ports = [free_port(), free_port()]
    procs = [_spawn_worker(config, p, tmp_path / f"worker-{i}.log") for i, p in enumerate(ports)]
    try:
        for p in ports:  # a lag gauge: the worker has partitions and has fetched
            wait_until(lambda p=p: _scrape(p, "audience_worker_consumer_lag") >= 0, 60,
                       "both workers in the group")
        tracks = utk_tracks(200, cameras=6)
        feeder = threading.Thread(target=produce, args=(cfg, tracks, 40.0))
        feeder.start()
        wait_until(lambda: _scrape(ports[0], "audience_worker_visits_total") > 0, 60,
                   "worker 0 storing visits")
        stored_at_kill = count_visits(db_url)[0]
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)
        feeder.join(60)
        assert stored_at_kill < len(tracks)  # it died mid-stream
        wait_until(lambda: count_visits(db_url)[0] >= len(tracks), 90, "all visits stored")
        time.sleep(1)  # a late duplicate would show up now
        assert count_visits(db_url) == (len(tracks), len(tracks))
        assert {v["track_id"] for v in visits(db_url)} == {t.track_id for t in tracks}
        procs[1].send_signal(signal.SIGTERM)  # finish the batch, commit, exit 0
        assert procs[1].wait(30) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


# -- e. simulated cameras: every visitor exactly once -------------------------------------------
@postgres
def test_four_simulated_cameras_two_workers_count_every_visitor_once(
        kafka_broker: str, db_url: str, analyzer: FaceAnalyzer,  # noqa: F811
        thread_workers: list[ThreadWorker]) -> None:
    migrate(db_url)
    cfg = AppConfig()
    cfg.kafka = kafka_cfg(kafka_broker)
    plans = plan(cameras=4, fps=5, duration_s=9, faces=UTK)
    truth = ground_truth(plans)
    assert truth["visitors"] == 12 and truth["per_camera"] == {
        f"sim-cam-{i}": 3 for i in range(1, 5)}
    thread_workers.extend(ThreadWorker(cfg.kafka, analyzer, db_url) for _ in range(2))
    assert publish(plans, cfg.camera, cfg.kafka, UTK) == truth["visitors"]
    wait_until(lambda: count_visits(db_url)[0] >= truth["visitors"], 60, "all visitors stored")
    time.sleep(1)
    assert count_visits(db_url) == (12, 12)
    per_camera: dict[str, int] = {}
    for v in visits(db_url):
        per_camera[v["camera_id"]] = per_camera.get(v["camera_id"], 0) + 1
        assert v["store_id"] == "sim-store" and 1.5 < v["dwell_s"] < 3.0
    assert per_camera == truth["per_camera"]


@pytest.mark.slow
def test_simulate_command_writes_frames_and_ground_truth(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "audience", "-q", "simulate", "--cameras",
                          "2", "--duration", "3.5", "--faces", str(UTK), "--out",
                          str(tmp_path)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    truth = json.loads(out.stdout)
    assert truth["visitors"] == 2 and json.loads((tmp_path / "ground_truth.json").read_text())
    label = truth["labels"][0]
    assert label["gender"] in ("male", "female") and label["file"].startswith(
        f"{label['age']}_")
    assert len(list((tmp_path / "sim-cam-1").glob("*.png"))) == 17  # 3.5 s at 5 fps


# -- f. broker restart (durable storage) ---------------------------------------------------------
@postgres
def test_broker_restart_loses_nothing(durable_broker: Tansu, db_url: str,  # noqa: F811
                                      analyzer: FaceAnalyzer,
                                      thread_workers: list[ThreadWorker]) -> None:
    migrate(db_url)
    cfg = kafka_cfg(durable_broker.bootstrap, batch_max_messages=8)
    tracks = utk_tracks(60)
    produce(cfg, tracks[:30])
    durable_broker.restart(signal.SIGKILL)  # acked, not yet consumed: must survive
    thread_workers.append(ThreadWorker(cfg, analyzer, db_url))
    wait_until(lambda: count_visits(db_url)[0] >= 30, 60, "the first 30 visits stored")
    durable_broker.restart(signal.SIGKILL)  # under a running worker: it rides through
    produce(cfg, tracks[30:])
    wait_until(lambda: count_visits(db_url)[0] >= len(tracks), 120, "all visits stored")
    assert count_visits(db_url) == (60, 60)
    assert {v["track_id"] for v in visits(db_url)} == {t.track_id for t in tracks}
    thread_workers[0].stop()
    # The committed offsets survived too: a new member of the group has nothing to redo.
    durable_broker.restart(signal.SIGTERM)
    late = ThreadWorker(cfg, analyzer, db_url)
    thread_workers.append(late)
    wait_until(lambda: late.worker.consumer.assignment(), 30, "the new worker's assignment")
    time.sleep(2)
    late.stop()
    assert late.worker.stored == 0


@postgres
def test_bench_pipeline_command(kafka_broker: str, db_url: str) -> None:  # noqa: F811
    migrate(db_url)
    out = subprocess.run([sys.executable, "-m", "audience", "-q", "bench", "pipeline",
                          "--cameras", "2", "--workers", "2", "--duration", "6", "--faces",
                          str(UTK), "--db", db_url, "--bootstrap-servers", kafka_broker,
                          "--json"], capture_output=True, text=True, timeout=120, cwd=ROOT,
                         env={**os.environ, "AUDIENCE_KAFKA__SESSION_TIMEOUT_MS": "6000",
                              "AUDIENCE_ANALYZER__THREADS": "1"})
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["visitors"] == r["published"] == r["visits"] == 4
    assert r["visits_per_s"] > 0 and 0 < r["latency_p50_s"] <= r["latency_p95_s"]
    assert r["rows"] == 4 and r["stages_s"]["analyze"]["p50"] > 0  # where the time went
    assert count_visits(db_url) == (4, 4)
