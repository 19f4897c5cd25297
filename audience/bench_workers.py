"""`audience bench workers`: does adding an inference worker add capacity?

For each W in ``--workers`` (e.g. 1,2), with a fresh topic, consumer group and store id:
W real ``audience infer`` processes start, each with one analyzer thread
(``analyzer.threads=1``) and pinned to one core (``sched_setaffinity``, core ``i mod
cores``); once they share the partitions they are paused (SIGSTOP), a backlog of N tracks is
published, and they resume together (SIGCONT) and drain it. Start-up (model load, group
join) and publishing so stay out of the figures. The parent scrapes each worker's /metrics
every 0.2 s.

Figures per W:

- ``drain_visits_per_s``: N / (resume -> the N-th visit stored), the headline figure;
- ``steady_visits_per_s``: visits/s while *every* worker is busy: from the first scrape
  where each worker has stored something to the first where one has stored its whole share
  (the messages of its partitions); the per-worker capacity the model in
  :mod:`audience.capacity` uses;
- ``worker_cores``: CPU seconds the workers used / drain seconds. On an idle machine W
  workers get about W cores; less means other processes took the rest, and says how far a
  figure is from what the code can do (``visits_per_cpu_s`` does not depend on it);
- ``rows``: rows of the run's store in the database (must equal N: every track stored once)
  and ``deliveries`` (visits the workers wrote; above N means harmless redelivered upserts);
- ``stage_share``: the workers' time per stage (decode, analyze, database), from the
  ``audience_worker_stage_seconds`` histograms.

Tracks are built from face images (UTKFace-named JPEGs, ``crops_per_visit`` crops each,
48x48 colour, lossless PNG on the wire as the camera sends them), not by running the camera
stage: a backlog of thousands of tracks would otherwise take minutes of detection. Messages
are spread evenly over the partitions (``partition = i mod P``); in production, keys are
camera ids and many cameras per partition even the load out.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from audience.core.errors import InputError, MissingFileError
from audience.core.face import Face, Track
from audience.core.kafka_io import BrokerError, ensure_topics, make_producer
from audience.core.preprocess import INPUT_SIZE
from audience.core.wire import encode_track
from audience.settings import AppConfig

_SAMPLE = re.compile(r'^(audience_worker_[a-z_]+?)(?:\{([^}]*)\})? ([0-9.eE+-]+)$')


# -- the backlog --------------------------------------------------------------------------
def face_crops(folder: Path, n: int = 200) -> list[np.ndarray]:
    """``n`` 48x48 colour crops from a folder of face images (the centre of each chip)."""
    folder = Path(folder)
    names = sorted(p for p in folder.glob("*.jpg"))[:n] if folder.is_dir() else []
    crops = []
    for path in names:
        img = cv2.imread(str(path))
        if img is not None:
            h, w = img.shape[:2]
            mh, mw = h // 10, w // 10  # a UTKFace chip has a margin around the face
            crops.append(cv2.resize(img[mh:h - mh, mw:w - mw], (INPUT_SIZE, INPUT_SIZE),
                                    interpolation=cv2.INTER_AREA))
    if not crops:
        raise MissingFileError(f"no readable *.jpg face images in {folder}: pass --faces DIR "
                               "(e.g. ../shared/datasets/utkface/crop_part1)")
    return crops


def backlog(crops: list[np.ndarray], n: int, store: str, per_track: int, cameras: int,
            max_bytes: int) -> list[tuple[str, bytes]]:
    """``n`` encoded tracks (camera id, message), each with its own random track id."""
    out = []
    now = time.time()
    for i in range(n):
        faces = [Face(box=np.zeros(4, np.float32), landmarks=np.zeros((5, 2), np.float32),
                      score=0.9, timestamp=now, quality=1.0 - 0.1 * k,
                      crop=crops[(i * per_track + k) % len(crops)]) for k in range(per_track)]
        camera = f"bench-cam-{i % cameras}"
        track = Track(camera_id=camera, store_id=store, track_id=uuid.uuid4().hex,
                      started_at=now - 3.0, ended_at=now, n_detections=15, faces=faces)
        out.append((camera, encode_track(track, max_bytes)))
    return out


# -- the workers --------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pin(core: int | None) -> Any:
    if core is None or not hasattr(os, "sched_setaffinity"):
        return None
    return lambda: os.sched_setaffinity(0, {core})


@dataclass
class Worker:
    proc: subprocess.Popen
    port: int
    core: int | None
    log: Path
    visits: float = 0.0
    lag: float | None = None  #: summed over its partitions; None until it has partitions
    partitions: int = 0
    stages: dict[str, float] = field(default_factory=dict)  #: stage -> seconds (sum)
    batches: float = 0.0


def scrape(w: Worker) -> bool:
    """Refresh ``w`` from its /metrics; False while the endpoint is not up yet."""
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{w.port}/metrics", timeout=2).read()
    except OSError:
        return False
    lag, parts, stages = 0.0, 0, {}
    for line in body.decode().splitlines():
        m = _SAMPLE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        if name == "audience_worker_visits_total":
            w.visits = value
        elif name == "audience_worker_consumer_lag":
            lag, parts = lag + value, parts + 1
        elif name == "audience_worker_stage_seconds_sum":
            stages[labels.split('"')[1]] = value
        elif name == "audience_worker_stage_seconds_count" and 'stage="analyze"' in labels:
            w.batches = value
    w.lag, w.partitions, w.stages = (lag if parts else None), parts, stages
    return True


def start_workers(cfg: AppConfig, n: int, topic: str, group: str, pin: bool,
                  logs: Path) -> list[Worker]:
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    env = {**os.environ, "AUDIENCE_KAFKA__TRACKS_TOPIC": topic,
           "AUDIENCE_KAFKA__DLQ_TOPIC": f"{topic}.dlq",
           "AUDIENCE_KAFKA__SESSION_TIMEOUT_MS": str(cfg.kafka.session_timeout_ms),
           "AUDIENCE_KAFKA__BATCH_MAX_MESSAGES": str(cfg.kafka.batch_max_messages),
           "AUDIENCE_ANALYZER__THREADS": "1", "OMP_NUM_THREADS": "1"}
    workers = []
    for i in range(n):
        port = _free_port()
        core = cores[i % len(cores)] if pin and cores else None
        cmd = [sys.executable, "-m", "audience", "-q", "infer", "--bootstrap-servers",
               cfg.kafka.bootstrap_servers, "--db", cfg.database.url, "--group-id", group,
               "--metrics-port", str(port)]
        log = logs / f"worker-{i}.log"  # a file: a full pipe would block the worker
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    preexec_fn=_pin(core))
        workers.append(Worker(proc, port, core, log))
    return workers


def stop_workers(workers: list[Worker]) -> None:
    for w in workers:
        if w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.proc.wait(60)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _check_alive(workers: list[Worker]) -> None:
    for w in workers:
        if w.proc.poll() is not None:
            err = w.log.read_text(errors="replace")[-1500:]
            raise BrokerError(f"an `audience infer` worker exited with {w.proc.returncode}: "
                              f"{err.strip() or 'no output'}")


def wait_for_group(workers: list[Worker], partitions: int, timeout_s: float) -> None:
    """Until the workers share all partitions (each holds some), stable for one second."""
    deadline, since = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        _check_alive(workers)
        up = all([scrape(w) for w in workers])
        owned = [w.partitions for w in workers]
        ready = up and sum(owned) == partitions and sum(x > 0 for x in owned) == min(
            len(workers), partitions)
        since = (since or time.monotonic()) if ready else None
        if since is not None and time.monotonic() - since >= 1.0:
            return
        time.sleep(0.2)
    raise BrokerError(f"{len(workers)} workers did not share the {partitions} partitions "
                      f"within {timeout_s:.0f} s")


# -- one run per W ------------------------------------------------------------------------
Sample = tuple[float, list[float], list[float | None], list[int]]  # t, visits, lag, partitions


def drain(cfg: AppConfig, workers: int, messages_for: Any, n: int, pin: bool,
          timeout_s: float) -> dict[str, Any]:
    """One run: W workers join a fresh topic's group and are paused (SIGSTOP); a backlog of
    ``n`` tracks for a fresh store is published; the workers resume together (SIGCONT) and
    drain it. The pause keeps start-up (model load, group join) and publishing out of the
    figures, and starts every worker at the same instant."""
    from audience.storage.db import open_engine
    from audience.storage.query import visit_total

    tag = uuid.uuid4().hex[:8]
    store = f"bench-w{workers}-{tag}"
    topic = f"{cfg.kafka.tracks_topic}.bench-{tag}"
    kcfg = cfg.kafka.model_copy(update={"tracks_topic": topic, "dlq_topic": f"{topic}.dlq"})
    ensure_topics(kcfg, [topic, kcfg.dlq_topic])
    msgs: list[tuple[str, bytes]] = messages_for(store)
    logs = Path(tempfile.mkdtemp(prefix=f"audience-bench-{tag}-"))
    group = start_workers(cfg, workers, topic, f"{cfg.kafka.group_id}-bench-{tag}", pin, logs)
    samples: list[Sample] = []
    try:
        wait_for_group(group, kcfg.partitions, timeout_s=120)
        shares = [n * w.partitions / kcfg.partitions for w in group]
        for w in group:
            w.proc.send_signal(signal.SIGSTOP)
        # kafka-python warns that a burst of sends "blocks the event loop": it is the burst
        logging.getLogger("kafka").setLevel(logging.ERROR)
        t0 = time.monotonic()
        producer = make_producer(kcfg, "audience-bench-workers")
        for i, (camera, data) in enumerate(msgs):
            producer.send(topic, key=camera.encode(), value=data,
                          partition=i % kcfg.partitions)
        producer.flush(120)
        producer.close(10)
        publish_s = time.monotonic() - t0
        cpu0 = [cpu_seconds(w.proc.pid) for w in group]
        resumed = time.monotonic()
        for w in group:
            w.proc.send_signal(signal.SIGCONT)
        while time.monotonic() < resumed + timeout_s:
            _check_alive(group)
            for w in group:
                scrape(w)
            samples.append((time.monotonic() - resumed, [w.visits for w in group],
                            [w.lag for w in group], [w.partitions for w in group]))
            if sum(w.visits for w in group) >= n:
                break
            time.sleep(0.2)
        cpu = sum(cpu_seconds(w.proc.pid) - c for w, c in zip(group, cpu0, strict=True))
    finally:
        for w in group:
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGCONT)  # a stopped process ignores SIGTERM
        stop_workers(group)
    engine = open_engine(cfg.database.url, create=False)
    try:
        rows = visit_total(engine, store, k=1) or 0
    finally:
        engine.dispose()
    done = next((t for t, v, _, _ in samples if sum(v) >= n), None)
    stages = {k: sum(w.stages.get(k, 0.0) for w in group)
              for k in ("decode", "analyze", "database")}
    busy = sum(stages.values()) or 1.0
    batches = sum(w.batches for w in group)
    return {
        "workers": workers, "tracks": n, "rows": rows,
        "deliveries": int(sum(w.visits for w in group)),
        "publish_s": round(publish_s, 2),
        "drain_s": round(done, 2) if done else None,
        "drain_visits_per_s": round(n / done, 1) if done else None,
        "steady_visits_per_s": steady_rate(samples, shares),
        # cores the workers got while draining: W on an otherwise idle machine gets ~W
        "worker_cores": round(cpu / samples[-1][0], 2) if samples and samples[-1][0] else None,
        "visits_per_cpu_s": round(n / cpu, 1) if cpu and done else None,
        "stage_share": {k: round(v / busy, 3) for k, v in stages.items()},
        # the rest of the drain the workers waited (for Kafka, or for a core)
        "busy_share": round(busy / (done * workers), 3) if done else None,
        "mean_batch": round(sum(w.visits for w in group) / batches, 1) if batches else None,
        "cores": [w.core for w in group],
        # (s since the workers resumed, visits per worker, lag per worker)
        "timeline": [(round(t, 2), [int(x) for x in v], lags) for t, v, lags, _ in samples],
    }


def steady_rate(samples: list[Sample], shares: list[float]) -> float | None:
    """Visits/s while every worker is busy: from the first sample where each worker has
    stored something to the first where one has stored its whole share (the messages of its
    partitions) and has nothing left to do."""
    start = next((i for i, (_, v, *_) in enumerate(samples) if all(x > 0 for x in v)), None)
    if start is None:
        return None
    end = next((i for i in range(start + 1, len(samples))
                if any(x >= share for x, share in zip(samples[i][1], shares, strict=True))),
               len(samples) - 1)
    if end <= start:
        return None
    (t1, v1, *_), (t2, v2, *_) = samples[start], samples[end]
    return round((sum(v2) - sum(v1)) / (t2 - t1), 1)


def check_counts(cfg: AppConfig, workers: list[int], tracks: int) -> None:
    """InputError unless every W gets a partition and the backlog has a track."""
    if tracks < 1 or not workers or min(workers) < 1:
        raise InputError("need at least 1 track and worker counts >= 1, e.g. --workers 1,2")
    if max(workers) > cfg.kafka.partitions:
        raise InputError(f"{max(workers)} workers but {cfg.kafka.partitions} partitions: "
                         "raise kafka.partitions (a worker without a partition sits idle)")


def bench_workers(cfg: AppConfig, workers: list[int], tracks: int = 3000,
                  faces: Path | None = None, pin: bool = True, cameras: int = 48,
                  upsert_seconds: float = 3.0, timeout_s: float = 600.0) -> dict[str, Any]:
    """The drain figures for each W, and the database's batched upsert rate beside them."""
    from audience.storage.bench import bench_database, upsert_rate

    check_counts(cfg, workers, tracks)
    per_track = cfg.analyzer.crops_per_visit
    crops = face_crops(faces or Path("../shared/datasets/utkface/crop_part1"))
    engine = bench_database(cfg.database.url)  # a new, empty one is migrated
    try:
        upserts = upsert_rate(engine, cfg.kafka.batch_max_messages, upsert_seconds)
    finally:
        engine.dispose()
    sizes: list[int] = []

    def messages_for(store: str) -> list[tuple[str, bytes]]:
        msgs = backlog(crops, tracks, store, per_track, cameras, cfg.kafka.max_message_bytes)
        sizes.extend(len(m) for _, m in msgs)
        return msgs

    runs = [drain(cfg, w, messages_for, tracks, pin, timeout_s) for w in workers]
    # relative to the fewest workers, whatever order they ran in (2,1 runs W=2 first)
    base = min(runs, key=lambda r: r["workers"])["steady_visits_per_s"] or 0.0
    for r in runs:
        rate = r["steady_visits_per_s"]
        r["speedup"] = round(rate / base, 2) if base and rate else None
    return {"database": upserts["database"], "partitions": cfg.kafka.partitions,
            "crops_per_visit": per_track, "batch_max_messages": cfg.kafka.batch_max_messages,
            "message_bytes": round(float(np.mean(sizes))) if sizes else None,
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2), "runs": runs, "upserts": upserts}
