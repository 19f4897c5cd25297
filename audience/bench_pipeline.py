"""`audience bench pipeline`: simulated cameras -> Kafka -> W inference workers -> database.

Uses fresh topics, group and store id per run, so it never mixes with live data; the visits
it writes belong to store ``bench-TAG``.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import numpy as np

from audience.settings import AppConfig


def bench_pipeline(cfg: AppConfig, cameras: int, workers: int, duration_s: float = 20.0,
                   fps: float = 5.0, faces: Path | None = None, realtime: bool = False,
                   timeout_s: float = 300.0) -> dict:
    from audience.inference.analyzer import FaceAnalyzer
    from audience.inference.worker import InferenceWorker
    from audience.ingest.simulate import DEFAULT_FACES, ground_truth, plan, publish
    from audience.storage.db import prepare_database

    faces = faces or DEFAULT_FACES
    tag = uuid.uuid4().hex[:8]
    cfg.kafka = cfg.kafka.model_copy(update={
        "tracks_topic": f"{cfg.kafka.tracks_topic}.bench-{tag}",
        "dlq_topic": f"{cfg.kafka.dlq_topic}.bench-{tag}",
        "group_id": f"{cfg.kafka.group_id}-bench-{tag}", "metrics_port": 0})
    plans = plan(cameras, fps, duration_s, faces, store_id=f"bench-{tag}")
    expected = ground_truth(plans)["visitors"]
    engine = prepare_database(cfg.database.url)
    analyzer = FaceAnalyzer(cfg.analyzer)  # one model, shared by the worker threads
    group = [InferenceWorker(cfg.kafka, analyzer, engine, cfg.analyzer.crops_per_visit)
             for _ in range(workers)]
    for w in group:
        w.latencies = []
    threads = [threading.Thread(target=w.run, daemon=True) for w in group]
    for t in threads:
        t.start()
    started = time.monotonic()
    try:
        published = publish(plans, cfg.camera, cfg.kafka, faces, realtime)
        deadline = time.monotonic() + timeout_s
        while sum(w.stored for w in group) < published and time.monotonic() < deadline:
            time.sleep(0.05)
        seconds = time.monotonic() - started
    finally:
        for w in group:
            w.stop.set()
        for t in threads:
            t.join(60)
        engine.dispose()
    stored = sum(w.stored for w in group)
    lat = np.array([x for w in group for x in (w.latencies or [])])
    faces_n = sum(w.faces for w in group)
    return {
        "cameras": cameras, "workers": workers, "fps": fps, "duration_s": duration_s,
        "realtime": realtime, "visitors": expected, "published": published,
        "visits": stored, "seconds": round(seconds, 2),
        "visits_per_s": round(stored / seconds, 2) if seconds else 0.0,
        "faces_per_s": round(faces_n / seconds, 1) if seconds else 0.0,
        "latency_p50_s": round(float(np.percentile(lat, 50)), 3) if lat.size else None,
        "latency_p95_s": round(float(np.percentile(lat, 95)), 3) if lat.size else None,
        "database": engine.dialect.name,
    }
