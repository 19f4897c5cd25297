"""Adaptive batching, stage timing, the worker-scaling bench and the capacity model.

Speed itself comes from `audience bench pipeline` / `audience bench workers`, never from a
timed test: these tests check behaviour (what is polled, how long the worker is told to
wait, that every track is stored once) and the model's arithmetic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from kafka_broker import kafka_broker  # noqa: F401

from audience.bench_workers import steady_rate
from audience.capacity import MEASURED, Measured, Scenario, check, plan
from audience.core.kafka_config import KafkaConfig
from audience.inference.worker import InferenceWorker, StageClock
from audience.storage.db import migrate

ROOT = Path(__file__).resolve().parents[1]
UTK = ROOT.parent / "shared" / "datasets" / "utkface" / "crop_part1"
TP = ("tracks", 0)


class FakeConsumer:
    """Hands out ``backlog`` records; later arrivals come from ``arrivals`` one per poll.
    Records every timeout the worker asked for."""

    def __init__(self, backlog: int, arrivals: int = 0) -> None:
        self.queue = [SimpleNamespace(offset=i) for i in range(backlog)]
        self.arrivals = arrivals
        self.timeouts: list[int] = []

    def subscribe(self, topics: list[str]) -> None:
        pass

    def poll(self, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        self.timeouts.append(timeout_ms)
        if not self.queue and self.arrivals:
            self.arrivals -= 1
            self.queue.append(SimpleNamespace(offset=-1))
        if not self.queue:
            time.sleep(timeout_ms / 1000)  # a real poll blocks until its timeout
            return {}
        got, self.queue = self.queue[:max_records], self.queue[max_records:]
        return {TP: got}


def worker(consumer: FakeConsumer, **kafka: Any) -> InferenceWorker:
    cfg = KafkaConfig(batch_max_messages=64, **kafka)
    return InferenceWorker(cfg, analyzer=None, engine=None,  # type: ignore[arg-type]
                           consumer=consumer, producer=object(), create_topics=False)


@pytest.mark.parametrize(("backlog", "batch", "blocking_polls"), [
    (1, 1, 1),      # idle worker, one message: processed at once, no waiting to fill a batch
    (3, 3, 1),      # what has arrived is one batch
    (150, 64, 1),   # a backlog fills the batch from the fetch buffer
    (0, 0, 1),      # nothing: back to run() after one bounded wait
])
def test_adaptive_batch_takes_what_has_arrived(backlog: int, batch: int,
                                              blocking_polls: int) -> None:
    c = FakeConsumer(backlog)
    assert len(worker(c)._poll_batch()) == batch
    # only the first poll may block (waiting for a first message); then non-blocking ones
    assert sum(t > 0 for t in c.timeouts) == blocking_polls
    assert c.timeouts[0] == 200


def test_linger_when_configured_keeps_polling_for_more() -> None:
    c = FakeConsumer(1, arrivals=2)
    assert len(worker(c, batch_max_wait_ms=50)._poll_batch()) == 3
    assert sum(t > 0 for t in c.timeouts) >= 2  # it waited for the later arrivals


def test_stage_clock_adds_up_marks() -> None:
    clock = StageClock(time.monotonic())
    for stage in ("decode", "analyze", "database", "database"):
        clock.mark(stage)
    stages = clock.stages()
    assert list(stages) == ["decode", "analyze", "database"]
    assert all(v >= 0 for v in stages.values())


# -- steady rate over a scraped timeline ---------------------------------------------------
@pytest.mark.parametrize(("samples", "shares", "rate"), [
    # both busy from t=1 to t=3 (60 -> 260 visits), worker 0 reaches its share 150 at t=3
    ([(0, [0, 0]), (1, [30, 30]), (2, [80, 80]), (3, [150, 110]), (4, [150, 150])],
     [150, 150], 100.0),
    # worker 1 never started: no all-busy window
    ([(0, [0, 0]), (1, [50, 0]), (2, [100, 0])], [100, 100], None),
    # one worker: from its first batch to its last sample
    ([(0, [0]), (1, [64]), (3, [192]), (4, [200])], [200], 45.3),
])
def test_steady_rate(samples: list[tuple[float, list[float]]], shares: list[float],
                     rate: float | None) -> None:
    full = [(t, v, [None] * len(v), [1] * len(v)) for t, v in samples]
    assert steady_rate(full, shares) == rate  # type: ignore[arg-type]


# -- the capacity model ----------------------------------------------------------------------
M = Measured(worker_visits_per_s=200.0, efficiency=0.9, crops_per_visit=5,
             message_bytes=30_000, upserts_per_s=2000.0, upsert_batch=64, database="postgresql")


@pytest.mark.parametrize(("scenario", "expected"), [
    # 2,000 cameras x 1,000/h = 555.6 visits/s; a worker does 180/s -> 3.09 cores busy;
    # at 60%: 6 workers; a 15-min outage cleared in 15 min needs 2x: 7 workers
    (Scenario(), {"visits_per_s": 555.56, "worker_cores_busy": 3.09, "workers_steady": 6,
                  "workers_max": 7, "partitions": 7, "keda_lag_threshold": 200,
                  "kafka_in_mb_per_s": 16.67, "topic_gb_1h": 180.0, "db_rows_per_s": 555.56}),
    # one small store: availability, not load, sets the floor
    (Scenario(stores=1, cameras=2, visitors_per_camera_hour=100),
     {"workers_steady": 2, "workers_max": 2, "db_share_of_measured": 0.0}),
    # no outage to absorb: max = steady
    (Scenario(outage_min=0), {"workers_steady": 6, "workers_max": 6}),
])
def test_capacity_plan(scenario: Scenario, expected: dict[str, Any]) -> None:
    p = plan(scenario, M)
    assert {k: p[k] for k in expected} == expected


def test_capacity_check_at_small_scale() -> None:
    run = {"cameras": 4, "visitors_per_camera_hour": 1200, "workers": 2, "seconds": 12.0,
           "visits": 16, "worker_busy_share": 0.01, "kafka_bytes_per_s": 47_000,
           "message_bytes": 35_000, "mean_batch": 1.3}
    rows = {what: (model, got) for what, model, got in check(run, M)}
    assert rows["visits/s = database rows/s"][0] == "1.33"
    assert rows["visits/s = database rows/s"][1].startswith("1.33")


def test_shipped_keda_settings_are_what_the_model_implies() -> None:
    """deploy/k8s follows the capacity table for the documented chain (docs/operations.md:
    500 stores x 4 cameras) from the measured figures shipped in deploy/capacity/."""
    p = plan(Scenario(), Measured.load(MEASURED))
    so = yaml.safe_load((ROOT / "deploy" / "k8s" / "infer-scaledobject.yaml").read_text())
    trigger = so["spec"]["triggers"][0]["metadata"]
    assert so["spec"]["maxReplicaCount"] == p["keda_max_replicas"] == p["partitions"]
    assert so["spec"]["minReplicaCount"] == p["keda_min_replicas"]
    assert int(trigger["lagThreshold"]) == p["keda_lag_threshold"]


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["capacity", "--json"], 0, '"keda_max_replicas"'),
    (["capacity", "--stores", "10", "--cameras", "2"], 0, "workers max = partitions"),
    (["capacity", "--measured", "nowhere.json"], 2, "bench workers --json"),
    (["bench", "workers", "--workers", "1,x"], 2, "give worker counts like 1,2"),
    (["bench", "workers", "--workers", "1,7"], 2, "raise kafka.partitions"),
])
def test_capacity_and_bench_workers_command(args: list[str], code: int, needle: str) -> None:
    out = subprocess.run([sys.executable, "-m", "audience", *args], capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert out.returncode == code, out.stderr
    assert needle in out.stdout + out.stderr


# -- bench workers, end to end (small) ---------------------------------------------------------
@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_bench_workers_stores_every_track_once(kafka_broker: str, db_url: str) -> None:  # noqa: F811
    migrate(db_url)
    out = subprocess.run(
        [sys.executable, "-m", "audience", "-q", "bench", "workers", "--workers", "1,2",
         "--tracks", "120", "--faces", str(UTK), "--db", db_url, "--bootstrap-servers",
         kafka_broker, "--json"], capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "AUDIENCE_KAFKA__SESSION_TIMEOUT_MS": "6000"})
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout)
    assert [run["workers"] for run in r["runs"]] == [1, 2]
    for run in r["runs"]:
        assert run["rows"] == run["tracks"] == 120  # every track stored, once
        assert run["drain_visits_per_s"] > 0
    assert r["upserts"]["visits_per_s"] > 0 and r["message_bytes"] > 10_000
