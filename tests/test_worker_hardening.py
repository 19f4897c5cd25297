"""No message stops an inference worker: against the real broker (tansu) and
a real PostgreSQL. Each poison message goes to the dead-letter topic with its reason, topic,
partition and offset, in a record that fits the broker's limit; the valid messages of the same
batch are stored; the worker carries on. Ends with a property-based fuzz test (hypothesis)."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import _pg_database
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, KafkaProducer
from kafka_broker import kafka_broker, wait_until  # noqa: F401
from sqlalchemy import text

from audience.core.face import Face, Track
from audience.core.kafka_config import KafkaConfig
from audience.core.kafka_io import ensure_topics
from audience.core.visit import Visit
from audience.core.wire import MessageError, decode_message, encode_track
from audience.inference.analyzer import FaceAnalyzer
from audience.inference.config import AnalyzerConfig
from audience.inference.worker import InferenceWorker
from audience.storage.db import migrate, open_engine

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
T0 = 1_715_000_000.0


def crop(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 255, (12, 12), dtype=np.uint8), (48, 48),
                      interpolation=cv2.INTER_CUBIC)


def track(n_crops: int = 2, **over: Any) -> Track:
    faces = [Face(box=np.zeros(4, np.float32), landmarks=np.zeros((5, 2), np.float32),
                  score=0.9, timestamp=T0 + i, quality=1.0 - i / 10, crop=crop(i))
             for i in range(n_crops)]
    fields: dict[str, Any] = dict(camera_id="cam-1", store_id="store-1",
                                  track_id=uuid.uuid4().hex, started_at=T0, ended_at=T0 + 3.0,
                                  n_detections=12, faces=faces)
    return Track(**(fields | over))


def body(t: Track) -> dict[str, Any]:
    # A fixed produced_at (and uuid4 ids, always 32 characters): every message of a given
    # shape has the same length, so hypothesis draws (e.g. a byte to flip) stay reproducible.
    return json.loads(encode_track(t, produced_at=T0 + 10))


def dumps(b: dict[str, Any]) -> bytes:
    return json.dumps(b, separators=(",", ":")).encode()


def kafka_cfg(bootstrap: str, **over: Any) -> KafkaConfig:
    tag = uuid.uuid4().hex[:8]
    return KafkaConfig(**({"bootstrap_servers": bootstrap, "tracks_topic": f"tracks-{tag}",
                           "dlq_topic": f"dlq-{tag}", "group_id": f"infer-{tag}",
                           "session_timeout_ms": 6000, "batch_max_wait_ms": 200,
                           "metrics_port": 0, "partitions": 1} | over))


def rows_by_track(url: str) -> dict[str, int]:
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            got = conn.execute(text("SELECT track_id, count(*) FROM visits GROUP BY track_id"))
            return {r[0]: int(r[1]) for r in got}
    finally:
        engine.dispose()



class Running:
    """One in-process worker on a fresh topic and database; ``thread`` must stay alive."""

    def __init__(self, bootstrap: str, url: str, analyzer: FaceAnalyzer) -> None:
        self.cfg = kafka_cfg(bootstrap)
        ensure_topics(self.cfg, [self.cfg.tracks_topic, self.cfg.dlq_topic])
        self.url = url
        self.engine = open_engine(url)
        self.worker = InferenceWorker(self.cfg, analyzer, self.engine, create_topics=False)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)
        self.thread.start()
        # big records: our producer must not refuse what a hostile one could send
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=20_000_000)

    def send(self, values: list[bytes]) -> None:
        for v in values:
            self.producer.send(self.cfg.tracks_topic, key=b"cam-1", value=v)
        self.producer.flush()

    def handled(self) -> int:
        return self.worker.stored + self.worker.dead

    def close(self) -> None:
        self.producer.close()
        self.worker.stop.set()
        self.thread.join(30)
        self.engine.dispose()


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer(AnalyzerConfig(threads=1))


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    for url in _pg_database():
        migrate(url)
        yield url


def _hostile() -> dict[str, bytes]:
    """The probes that once stopped a worker or were stored instead of refused."""
    many = body(track(1))
    many["crops"] = many["crops"] * 400  # 400 crops, about 3.3 MB with textured crops
    big = body(track(1))
    big["padding"] = "x" * 12_000_000  # 12 MB with an unknown key
    return {
        "750 kB malformed (DLQ copy over 1 MB)": b"{" + b"x" * 750_000,
        "400 kB of nested lists": b"[" * 200_000 + b"]" * 200_000,
        "lone surrogate store id": dumps(body(track(1)) | {"store_id": "\ud800evil"}),
        "trailing newline camera id": dumps(body(track(1)) | {"camera_id": "cam-1\n"}),
        "n_detections 10**30": dumps(body(track(1)) | {"n_detections": 10**30}),
        "400 crops": dumps(many),
        "12 MB with an unknown key": dumps(big),
    }


def test_poison_messages_go_to_the_dlq_and_the_batch_is_stored(
        kafka_broker: str, pg_url: str, analyzer: FaceAnalyzer) -> None:  # noqa: F811
    run = Running(kafka_broker, pg_url, analyzer)
    try:
        good = [track(2) for _ in range(3)]
        hostile = _hostile()
        # one batch: a valid message, the poison ones, valid ones after them
        run.send([encode_track(good[0]), *hostile.values(),
                  *(encode_track(t) for t in good[1:])])
        n = 3 + len(hostile)
        wait_until(lambda: run.handled() >= n or not run.thread.is_alive(), 90,
                   f"{n} messages handled", poll_s=0.1)
        assert run.thread.is_alive(), "the worker died"
        assert (run.worker.stored, run.worker.dead) == (3, len(hostile))
        assert run.worker.ready()  # /healthz: partitions assigned and consumed
        rows = rows_by_track(pg_url)
        assert all(rows.get(t.track_id) == 1 for t in good)
    finally:
        run.close()
    dlq = KafkaConsumer(run.cfg.dlq_topic, bootstrap_servers=kafka_broker,
                        auto_offset_reset="earliest", consumer_timeout_ms=5000,
                        fetch_max_bytes=50_000_000)
    dead = [m for m in dlq]
    dlq.close()
    assert len(dead) == len(hostile)
    for m, (probe, original) in zip(dead, hostile.items(), strict=True):
        assert len(m.value) <= run.cfg.max_message_bytes, probe  # always fits the broker
        p = json.loads(m.value)
        assert p["reason"] and p["topic"] == run.cfg.tracks_topic and p["partition"] == 0
        assert p["original_bytes"] == len(original), probe
        kept = base64.b64decode(p["original_b64"])
        assert original.startswith(kept) and p["truncated"] == (kept != original), probe
    assert [json.loads(m.value)["offset"] for m in dead] == list(range(1, 1 + len(hostile)))


class _Sent:
    def succeeded(self) -> bool:
        return True


def test_a_value_the_driver_cannot_encode_is_dead_lettered(pg_url: str) -> None:
    """psycopg2 raises UnicodeEncodeError (not a database error) on a lone surrogate: the
    visit is dead-lettered and the rest of the batch stored, not the worker stopped."""
    sent: list[dict] = []
    producer = SimpleNamespace(send=lambda topic, **kw: sent.append(kw) or _Sent(),
                               flush=lambda timeout=None: None)
    consumer = SimpleNamespace(subscribe=lambda topics: None)
    engine = open_engine(pg_url)
    worker = InferenceWorker(KafkaConfig(), analyzer=None, engine=engine,  # type: ignore[arg-type]
                             consumer=consumer, producer=producer, create_topics=False)

    def item(store: str) -> tuple[Any, Track, None, Visit]:
        t = datetime.fromtimestamp(T0, UTC)
        v = Visit(store_id=store, camera_id="cam-1", track_id=uuid.uuid4().hex, started_at=t,
                  ended_at=t, dwell_s=0.0, n_crops=0, model_version="test")
        rec = SimpleNamespace(topic="tracks", partition=0, offset=7, key=b"k", value=b"{}")
        return rec, track(0), None, v

    try:
        batch = [item("store-1"), item("\ud800evil"), item("store-1")]
        stored, failed = worker._store(batch)
        assert [s[3].track_id for s in stored] == [batch[0][3].track_id, batch[2][3].track_id]
        assert len(failed) == 1 and "UnicodeEncodeError" in failed[0][1]
        assert rows_by_track(pg_url).keys() >= {batch[0][3].track_id, batch[2][3].track_id}
    finally:
        engine.dispose()


# -- the fuzz test -----------------------------------------------------------------------------
_HOSTILE_VALUES = [None, True, False, -1, 0, 10**30, -1e308, 1e300, float("nan"), "", " ",
                   "\ud800evil", "a\n", "x" * 65, "[/]", "'; DROP TABLE visits; --", [], {},
                   [[[[]]]], {"png": "%%%"}, "é", 3.5]
_KEYS = ["schema", "store_id", "camera_id", "track_id", "started_at", "ended_at",
         "n_detections", "produced_at", "crops"]


def _mutate(draw: st.DrawFn, b: dict[str, Any]) -> None:
    how = draw(st.sampled_from(["field", "id", "drop", "extra", "crop"]))
    if how == "field":
        b[draw(st.sampled_from(_KEYS))] = draw(st.sampled_from(_HOSTILE_VALUES))
    elif how == "id":  # ids reach the database and the RLS filters: the likeliest poison
        b[draw(st.sampled_from(_KEYS[1:4]))] = draw(st.one_of(
            st.sampled_from(_HOSTILE_VALUES), st.text(max_size=70),
            st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF,
                                           categories=["Cs"]), max_size=3)))
    elif how == "drop":
        b.pop(draw(st.sampled_from(_KEYS)), None)
    elif how == "extra":
        b[draw(st.text(min_size=1, max_size=8))] = draw(st.sampled_from(_HOSTILE_VALUES))
    elif b.get("crops") and isinstance(b["crops"], list) and isinstance(b["crops"][0], dict):
        b["crops"][0][draw(st.sampled_from(["png", "score", "timestamp", "x"]))] = draw(
            st.sampled_from(_HOSTILE_VALUES))


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A valid message, a mutated valid one (1 to 3 mutations) or random bytes; each with
    its own track id."""
    kind = draw(st.sampled_from(["valid", "mutated", "mutated", "bytes", "flip", "deep"]))
    b = body(track(draw(st.integers(0, 3))))
    if kind == "bytes":
        return draw(st.binary(max_size=3000))
    if kind == "deep":
        depth = draw(st.integers(1, 300_000))
        return b"[" * depth + b"]" * draw(st.sampled_from([0, depth]))
    if kind == "mutated":
        for _ in range(draw(st.integers(1, 3))):
            _mutate(draw, b)
    data = dumps(b)
    if kind == "flip":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    return data


@pytest.fixture(scope="module")
def fuzz_worker(kafka_broker: str, pg_url: str,  # noqa: F811
                analyzer: FaceAnalyzer) -> Iterator[Running]:
    run = Running(kafka_broker, pg_url, analyzer)
    yield run
    run.close()


def _track_id(data: bytes) -> str | None:
    try:
        return decode_message(data)[0].track_id
    except MessageError:
        return None


@settings(max_examples=20, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(batch=st.lists(messages(), min_size=1, max_size=8))
def test_fuzz_the_worker_never_dies_and_valid_messages_land_once(
        fuzz_worker: Running, batch: list[bytes]) -> None:
    run = fuzz_worker
    before, handled = rows_by_track(run.url), run.handled()
    run.send(batch)
    wait_until(lambda: run.handled() >= handled + len(batch) or not run.thread.is_alive(), 60,
               f"{len(batch)} messages handled", poll_s=0.1)
    assert run.thread.is_alive(), "a message stopped the worker"
    after = rows_by_track(run.url)
    valid = {tid for tid in map(_track_id, batch) if tid is not None}
    for tid in valid:  # every valid message lands exactly once
        assert after.get(tid) == 1, tid
    # nothing else was written, and nothing stored before was duplicated
    assert set(after) - set(before) == valid - set(before)
    assert all(after[k] == 1 for k in after)
