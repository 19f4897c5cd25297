"""The database's batched upsert rate: visits/s written the way an inference worker writes
them (one transaction per batch through :class:`VisitSink`).

Writes synthetic visits of store ``bench-upsert-TAG`` (no image data, random track ids), so
it never touches live rows; `audience purge` or a DELETE on that store removes them.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import Engine

from audience.core.visit import Visit
from audience.storage.db import ensure_ready, mask, migrate_if_new, open_engine
from audience.storage.sink import VisitSink

log = logging.getLogger(__name__)


def bench_database(url: str) -> Engine:
    """An engine on a benchmark's database. A new, empty one (made for the benchmark) is
    migrated first, as `audience run` migrates its new SQLite file, and the log says so; one
    that holds tables must already be at the latest revision (StorageError otherwise)."""
    engine = open_engine(url)
    try:
        revision = migrate_if_new(engine)
        if revision is not None:
            log.info("the database %s was empty: migrated it to revision %s", mask(engine),
                     revision)
        ensure_ready(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _visit(store: str, camera: str, t: float) -> Visit:
    start = datetime.fromtimestamp(t - 3.0, UTC)
    return Visit(store_id=store, camera_id=camera, track_id=uuid.uuid4().hex, started_at=start,
                 ended_at=datetime.fromtimestamp(t, UTC), dwell_s=3.0, n_crops=5,
                 model_version="bench", emotion="neutral",
                 emotion_scores={"neutral": 0.6, "happy": 0.4}, age=31.5, age_bracket="25-34",
                 gender="female", gender_score=0.8)


def upsert_rate(engine: Engine, batch: int = 64, seconds: float = 3.0,
                cameras: int = 4) -> dict[str, float | int | str]:
    """Upsert batches of ``batch`` new visits for ``seconds``; visits/s and ms per batch."""
    store = f"bench-upsert-{uuid.uuid4().hex[:8]}"
    written, batches = 0, 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        sink = VisitSink(engine, batch_size=batch + 1)  # one flush = one transaction
        now = time.time()
        for i in range(batch):
            sink.add(_visit(store, f"cam-{i % cameras}", now))
        written += sink.flush()
        batches += 1
    elapsed = time.perf_counter() - started
    return {"database": engine.dialect.name, "batch": batch, "visits": written,
            "seconds": round(elapsed, 2), "visits_per_s": round(written / elapsed, 1),
            "ms_per_batch": round(1000 * elapsed / batches, 2), "store": store}
