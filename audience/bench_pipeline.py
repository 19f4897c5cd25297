"""`audience bench pipeline`: simulated cameras -> Kafka -> W inference workers -> database.

Uses fresh topics, group and store id per run, so it never mixes with live data; the visits
it writes belong to store ``bench-TAG``.

**Latency**, as printed and as docs/benchmarks.md states it: for each stored visit, from the moment
the camera stage ends its track (the tracker has not seen the face for
``tracker.max_unseen_s``; the message's ``produced_at``, taken before encoding) to the
commit of the transaction holding its row. It includes encoding the crops, Kafka, waiting
for a worker, decoding, the analyzer and the database commit; it excludes
``max_unseen_s`` itself (the time a tracker needs to know that someone has left) and the
offset commit after the row is safe. The stages are reported separately (p50/p95 over
visits): ``encode`` (camera side), ``acked`` (track end -> the broker acknowledged the
message, acks=all: encode, the producer's linger, the write), ``queued`` (track end ->
polled by a worker: all of that, the fetch and waiting for a busy worker), ``wait`` (batch
linger), ``decode``, ``analyze``, ``database``. ``encode`` and ``acked`` overlap ``queued``.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from audience.core.kafka_io import BrokerError
from audience.settings import AppConfig

STAGES = ("queued", "wait", "decode", "analyze", "database", "total")  # worker side


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50 / p95 (seconds, 3 decimals) of a list; None when it is empty."""
    if not values:
        return {"p50": None, "p95": None}
    a = np.asarray(values, dtype=np.float64)
    return {"p50": round(float(np.percentile(a, 50)), 4),
            "p95": round(float(np.percentile(a, 95)), 4)}


def wait_for_group(group: list[Any], partitions: int, timeout_s: float) -> None:
    """Until every worker holds a share of the partitions (all of them assigned), stable for
    one second. Reads each consumer's assignment only (no network call)."""
    deadline, stable_since = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        owned = [len(w.consumer.assignment()) for w in group]
        ready = (sum(owned) == partitions
                 and sum(n > 0 for n in owned) == min(len(group), partitions))
        if ready and stable_since is None:
            stable_since = time.monotonic()
        elif not ready:
            stable_since = None
        if stable_since is not None and time.monotonic() - stable_since >= 1.0:
            return
        time.sleep(0.1)
    raise BrokerError(f"the {len(group)} workers did not share the {partitions} partitions "
                      f"within {timeout_s:.0f} s: is the broker overloaded?")


def bench_pipeline(cfg: AppConfig, cameras: int, workers: int, duration_s: float = 20.0,
                   fps: float = 5.0, faces: Path | None = None, realtime: bool = False,
                   timeout_s: float = 300.0) -> dict:
    from audience.inference.analyzer import FaceAnalyzer
    from audience.inference.worker import InferenceWorker
    from audience.ingest.simulate import DEFAULT_FACES, GAP_S, WALK_S, ground_truth, plan, publish
    from audience.storage.bench import bench_database
    from audience.storage.query import visit_total

    faces = faces or DEFAULT_FACES
    tag = uuid.uuid4().hex[:8]
    store = f"bench-{tag}"
    cfg.kafka = cfg.kafka.model_copy(update={
        "tracks_topic": f"{cfg.kafka.tracks_topic}.bench-{tag}",
        "dlq_topic": f"{cfg.kafka.dlq_topic}.bench-{tag}",
        "group_id": f"{cfg.kafka.group_id}-bench-{tag}", "metrics_port": 0})
    plans = plan(cameras, fps, duration_s, faces, store_id=store)
    expected = ground_truth(plans)["visitors"]
    engine = bench_database(cfg.database.url)  # a new, empty one is migrated
    analyzer = FaceAnalyzer(cfg.analyzer)  # one model, shared by the worker threads
    group = [InferenceWorker(cfg.kafka, analyzer, engine, cfg.analyzer.crops_per_visit)
             for _ in range(workers)]
    for w in group:
        w.latencies, w.timings = [], []
    threads = [threading.Thread(target=w.run, daemon=True) for w in group]
    for t in threads:
        t.start()
    # Measure a running group, not its start: a join or rebalance stalls consumption for
    # seconds (long-running workers pay it once, at deploy time).
    wait_for_group(group, cfg.kafka.partitions, timeout_s=60)
    stats: dict[str, Any] = {}
    started = time.monotonic()
    try:
        published = publish(plans, cfg.camera, cfg.kafka, faces, realtime, stats)
        deadline = time.monotonic() + timeout_s
        while sum(w.stored for w in group) < published and time.monotonic() < deadline:
            time.sleep(0.05)
        seconds = time.monotonic() - started
    finally:
        for w in group:
            w.stop.set()
        for t in threads:
            t.join(60)
    try:
        rows = visit_total(engine, store, k=1) or 0
    finally:
        engine.dispose()
    stored = sum(w.stored for w in group)
    timings = [x for w in group for x in (w.timings or [])]
    stages = {name: percentiles([t[name] for t in timings]) for name in STAGES}
    stages = {"encode": percentiles(stats.get("encode_seconds", [])),
              "acked": percentiles(stats.get("ack_seconds", [])), **stages}
    faces_n = sum(w.faces for w in group)
    busy = sum(w.metrics.registry.get_sample_value("audience_worker_stage_seconds_sum",
                                                   {"stage": st}) or 0.0
               for w in group for st in ("decode", "analyze", "database"))
    return {
        "cameras": cameras, "workers": workers, "fps": fps, "duration_s": duration_s,
        "realtime": realtime, "visitors": expected, "published": published,
        "visits": stored, "rows": rows, "seconds": round(seconds, 2),
        "visits_per_s": round(stored / seconds, 2) if seconds else 0.0,
        "faces_per_s": round(faces_n / seconds, 1) if seconds else 0.0,
        "latency_p50_s": stages["total"]["p50"], "latency_p95_s": stages["total"]["p95"],
        "stages_s": stages,
        "mean_batch": round(float(np.mean([t["batch"] for t in timings])), 2) if timings
        else None,
        "message_bytes": round(stats.get("bytes", 0) / published) if published else None,
        "kafka_bytes_per_s": round(stats.get("bytes", 0) / seconds) if seconds else None,
        "visitors_per_camera_hour": round(3600 / (WALK_S + GAP_S)),
        "worker_busy_share": round(busy / (seconds * workers), 4) if seconds else None,
        "database": engine.dialect.name,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
