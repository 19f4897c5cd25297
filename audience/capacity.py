"""`audience capacity`: workers, partitions, topic size and database writes for a chain.

Measured inputs come from the JSON `audience bench workers --json` prints (the shipped copy:
``deploy/capacity/bench-workers.json``): a worker's visits per CPU-second with one analyzer
thread (W=1; what it does with a core of its own, as a pod requesting one core has, however
busy the benchmark machine was), the scaling efficiency (W=2's visits per CPU-second over
W=1's: what sharing the broker and the database costs), crops per visit, the mean message size
and the database's batched upsert rate. The scenario (stores, cameras,
peak footfall, outage to absorb) is the operator's. Nothing else is assumed:

- peak visits/s = stores x cameras x peak visitors per camera-hour / 3600;
- steady workers = ceil(peak visits/s / (per-worker visits/s x efficiency x utilisation));
  ``utilisation`` < 1 keeps a worker's queue short (latency) and absorbs a lost worker;
- max workers: after an outage of ``outage_min`` at peak, clear the backlog within
  ``catch_up_min`` while live traffic goes on: peak x (1 + outage / catch-up) of capacity;
- partitions = max workers (a worker beyond the partitions sits idle) = KEDA
  ``maxReplicaCount``;
- KEDA ``lagThreshold`` = what one worker clears in ``target_latency_s`` (lag per replica
  above it means a visit waits longer than the latency target);
- topic bytes at 1 h retention = peak visits/s x message bytes x 3600 x replication;
- PostgreSQL: rows/s = peak visits/s, in one transaction per worker batch: between
  visits/s / batch (backlogged) and visits/s (idle workers, batches of one).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import Field

from audience.core.config import Strict
from audience.core.errors import ConfigError, MissingFileError

MEASURED = Path(__file__).resolve().parent.parent / "deploy" / "capacity" / "bench-workers.json"


class Measured(Strict):
    """The inputs a model needs, as measured by `audience bench workers`."""

    worker_visits_per_s: float = Field(gt=0, description="Visits/s of one worker with one "
                                       "core to itself: W=1's visits per CPU-second.")
    efficiency: float = Field(gt=0, le=1.5, description="Visits per CPU-second of the largest "
                              "W measured over W=1's (1: adding workers loses nothing).")
    crops_per_visit: int = Field(ge=1, description="Crops analysed per visit.")
    message_bytes: int = Field(gt=0, description="Mean size of a track message on Kafka.")
    upserts_per_s: float = Field(gt=0, description="Batched upsert rate of the database "
                                 "(visits/s, one client).")
    upsert_batch: int = Field(ge=1, description="Visits per transaction in that figure.")
    database: str = Field(description="Which database the upsert rate is for.")
    load_avg_1m: float | None = Field(None, description="Load average when measured.")

    @classmethod
    def from_bench(cls, data: dict[str, Any]) -> Measured:
        """From the JSON of `audience bench workers --json`."""
        try:
            runs = data["runs"]
            one = next(r for r in runs if r["workers"] == 1)
            top = max(runs, key=lambda r: r["workers"])
            # Per CPU-second: what a worker does with its core to itself (a pod's request),
            # whatever else the benchmark machine was running; efficiency is then what the
            # code loses when W workers share the broker and the database.
            key = "visits_per_cpu_s" if one.get("visits_per_cpu_s") else "steady_visits_per_s"
            rate = one[key]
            eff = top[key] / rate if key == "visits_per_cpu_s" else \
                top[key] / (rate * top["workers"])
            return cls(worker_visits_per_s=rate, efficiency=min(1.0, eff),
                       crops_per_visit=data["crops_per_visit"],
                       message_bytes=data["message_bytes"],
                       upserts_per_s=data["upserts"]["visits_per_s"],
                       upsert_batch=data["upserts"]["batch"], database=data["database"],
                       load_avg_1m=data.get("load_avg_1m"))
        except (KeyError, TypeError, StopIteration, ZeroDivisionError) as exc:
            raise ConfigError(f"not the JSON of `audience bench workers --json` with a W=1 run "
                              f"({type(exc).__name__}: {exc})") from None

    @classmethod
    def load(cls, path: Path | None = None) -> Measured:
        path = Path(path or MEASURED)
        if not path.is_file():
            raise MissingFileError(f"{path} not found: run `audience bench workers --json > "
                                   f"{path.name}` first")
        try:
            return cls.from_bench(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not JSON: {exc}") from None


class Scenario(Strict):
    """A chain at its busiest hour, and what the operator wants from the pipeline."""

    stores: int = Field(500, ge=1, description="Stores in the chain.")
    cameras: int = Field(4, ge=1, description="Cameras per store.")
    visitors_per_camera_hour: float = Field(
        1000, gt=0, description="Tracks each camera emits in the peak hour (a busy entrance: "
        "1,000; the simulator's cameras: 1,200, one visitor every 3 s).")
    utilisation: float = Field(0.6, gt=0, le=1, description="Target busy share of a worker at "
                               "peak.")
    outage_min: float = Field(15, ge=0, description="Inference outage at peak to absorb.")
    catch_up_min: float = Field(15, gt=0, description="Time to clear that backlog in.")
    target_latency_s: float = Field(1.0, gt=0, description="Latency target: lag per replica "
                                    "above one target's worth of work scales out.")
    replication: int = Field(3, ge=1, description="Kafka replication factor.")
    min_replicas: int = Field(2, ge=1, description="Workers that always run (availability).")


def plan(s: Scenario, m: Measured) -> dict[str, Any]:
    """The capacity table (see the module docstring for each rule)."""
    visits = s.stores * s.cameras * s.visitors_per_camera_hour / 3600
    per_worker = m.worker_visits_per_s * m.efficiency
    steady = max(s.min_replicas, math.ceil(visits / (per_worker * s.utilisation)))
    peak_need = visits * (1 + s.outage_min / s.catch_up_min)
    max_workers = max(steady, math.ceil(peak_need / per_worker))
    bytes_s = visits * m.message_bytes
    return {
        "cameras": s.stores * s.cameras,
        "visits_per_s": round(visits, 2),
        "faces_per_s": round(visits * m.crops_per_visit, 1),
        "worker_cores_busy": round(visits / per_worker, 2),
        "workers_steady": steady,
        "workers_max": max_workers,
        "partitions": max_workers,
        "keda_max_replicas": max_workers,
        "keda_min_replicas": s.min_replicas,
        "keda_lag_threshold": max(1, math.floor(m.worker_visits_per_s * s.target_latency_s)),
        "kafka_in_mb_per_s": round(bytes_s / 1e6, 2),
        "topic_gb_1h": round(bytes_s * 3600 * s.replication / 1e9, 1),
        "topic_gb_1h_per_partition": round(bytes_s * 3600 * s.replication / 1e9 / max_workers,
                                           2),
        "backlog_after_outage": round(visits * s.outage_min * 60),
        "db_rows_per_s": round(visits, 2),
        "db_transactions_per_s": [round(visits / m.upsert_batch, 2), round(visits, 2)],
        "db_share_of_measured": round(visits / m.upserts_per_s, 3),
        "db_rows_per_peak_hour": round(visits * 3600),
    }


def table(s: Scenario, m: Measured, p: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, figure) rows for a terminal or docs/operations.md."""
    lo, hi = p["db_transactions_per_s"]
    return [
        ("chain", f"{s.stores} stores x {s.cameras} cameras = {p['cameras']} cameras, "
                  f"{s.visitors_per_camera_hour:g} visitors/camera at the peak hour"),
        ("measured: one worker, one core", f"{m.worker_visits_per_s:g} visits/s "
         f"({m.worker_visits_per_s * m.crops_per_visit:g} faces/s at {m.crops_per_visit} "
         f"crops/visit), scaling efficiency {m.efficiency:.2f}"),
        ("measured: message, database", f"{m.message_bytes:,} bytes/track; {m.database} "
         f"{m.upserts_per_s:g} upserts/s in batches of {m.upsert_batch}"),
        ("peak load", f"{p['visits_per_s']} visits/s, {p['faces_per_s']} faces/s"),
        ("worker cores busy at peak", f"{p['worker_cores_busy']}"),
        ("workers at peak", f"{p['workers_steady']} (at {s.utilisation:.0%} utilisation, "
                            f"at least {s.min_replicas})"),
        ("workers max = partitions", f"{p['workers_max']} (clears a {s.outage_min:g}-minute "
         f"outage backlog of {p['backlog_after_outage']:,} tracks in {s.catch_up_min:g} min)"),
        ("KEDA", f"minReplicaCount {p['keda_min_replicas']}, maxReplicaCount "
                 f"{p['keda_max_replicas']}, lagThreshold {p['keda_lag_threshold']} "
                 f"(one worker's {s.target_latency_s:g} s of work)"),
        ("Kafka in", f"{p['kafka_in_mb_per_s']} MB/s"),
        ("topic at 1 h retention", f"{p['topic_gb_1h']} GB with replication "
         f"{s.replication} ({p['topic_gb_1h_per_partition']} GB per partition)"),
        ("PostgreSQL", f"{p['db_rows_per_s']} rows/s in {lo}-{hi} transactions/s; "
         f"{p['db_share_of_measured']:.0%} of the measured batched upsert rate; "
         f"{p['db_rows_per_peak_hour']:,} rows in the peak hour"),
    ]


def check(run: dict[str, Any], m: Measured) -> list[tuple[str, str, str]]:
    """The model at the scale of a `bench pipeline --realtime --json` run, beside what the run
    measured: (what, model, measured)."""
    try:
        s = Scenario(stores=1, cameras=run["cameras"],
                     visitors_per_camera_hour=run["visitors_per_camera_hour"], min_replicas=1)
        p = plan(s, m)
        busy = run["worker_busy_share"] * run["workers"]
        seconds, visits = run["seconds"], run["visits"]
        rows = [
            ("visits/s = database rows/s", f"{p['visits_per_s']}",
             f"{round(visits / seconds, 2)} ({visits} visits in {seconds} s)"),
            ("Kafka in, kB/s", f"{round(p['kafka_in_mb_per_s'] * 1000, 1)}",
             f"{round(run['kafka_bytes_per_s'] / 1000, 1)}"),
            ("message bytes", f"{m.message_bytes:,}", f"{run['message_bytes']:,}"),
            ("worker cores busy",
             f"{p['visits_per_s'] / (m.worker_visits_per_s * m.efficiency):.3f}",
             f"{busy:.3f} (mean batch "
             f"{run['mean_batch']})"),
        ]
    except (KeyError, TypeError, ZeroDivisionError) as exc:
        raise ConfigError(f"not the JSON of `audience bench pipeline --realtime --json` "
                          f"({type(exc).__name__}: {exc})") from None
    return rows
