"""`audience camera`, `audience infer`, `audience simulate`: the scaled-out pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from storage.cli import fail

ConfigOpt = Annotated[Path | None, typer.Option(help="YAML config file (kafka, camera, "
                                                "analyzer, database sections).")]
BrokerOpt = Annotated[str | None, typer.Option(
    "--bootstrap-servers", help="Kafka brokers host:port,... (default from config).")]


def _config(config: Path | None, **sections: dict[str, object]):
    from inference.settings import apply_overrides, load_config

    return apply_overrides(load_config(config), sections)


def camera(
    config: ConfigOpt = None,
    source: Annotated[str | None, typer.Option(help="Video file, image folder, URL or webcam "
                                               "index (default from config).")] = None,
    store: Annotated[str | None, typer.Option(help="Store id.")] = None,
    camera_id: Annotated[str | None, typer.Option("--camera", help="Camera id.")] = None,
    bootstrap_servers: BrokerOpt = None,
    metrics_port: Annotated[int | None, typer.Option(help="/metrics and /healthz port "
                                                     "(0: off).")] = None,
) -> None:
    """Camera worker: analyse one camera's frames and publish each finished track (best face
    crops, no identity) to Kafka. SIGTERM ends the open tracks, flushes and exits 0."""
    from inference.kafka_io import BrokerError
    from ingest.publisher import run_camera

    cfg = _config(config, camera={"source": source, "store": store, "id": camera_id},
                  kafka={"bootstrap_servers": bootstrap_servers, "metrics_port": metrics_port})
    try:
        summary = run_camera(cfg)
    except BrokerError as exc:
        raise fail(exc) from None
    typer.echo(f"camera {cfg.camera.id}: {summary.frames} frames, {summary.tracks} tracks "
               f"published to {cfg.kafka.tracks_topic}")


def infer(
    config: ConfigOpt = None,
    db: Annotated[str | None, typer.Option(help="Database URL (env DATABASE_URL); PostgreSQL "
                                           "must be migrated (`audience db upgrade`).")] = None,
    bootstrap_servers: BrokerOpt = None,
    group_id: Annotated[str | None, typer.Option(help="Consumer group.")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="/metrics and /healthz port "
                                                     "(0: off).")] = None,
) -> None:
    """Inference worker: consume tracks in a consumer group, label them in batches, store
    visits, then commit offsets. SIGTERM finishes the batch, commits and exits 0."""
    from inference.kafka_io import BrokerError
    from inference.worker import run_worker

    cfg = _config(config, database={"url": db},
                  kafka={"bootstrap_servers": bootstrap_servers, "group_id": group_id,
                         "metrics_port": metrics_port})
    try:
        worker = run_worker(cfg)
    except BrokerError as exc:
        raise fail(exc) from None
    typer.echo(f"inference worker stopped: {worker.stored} visits stored, {worker.dead} "
               "messages dead-lettered")


def simulate(
    cameras: Annotated[int, typer.Option(min=1, help="Synthetic cameras.")] = 1,
    fps: Annotated[float, typer.Option(min=0.5, max=60, help="Frames per second.")] = 5.0,
    duration: Annotated[float, typer.Option(min=1, help="Seconds of video per camera.")]
    = 30.0,
    faces: Annotated[Path, typer.Option(help="UTKFace-named face images.")]
    = Path("../shared/datasets/utkface/crop_part1"),
    publish: Annotated[bool, typer.Option("--publish", help="Run the camera stage and "
                                          "publish the tracks to Kafka.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write each camera's frames as an image "
                                             "folder, and ground_truth.json.")] = None,
    realtime: Annotated[bool, typer.Option(help="Pace frames at --fps (load tests).")] = False,
    seed: Annotated[int, typer.Option(help="Random seed (which faces).")] = 0,
    config: ConfigOpt = None,
    bootstrap_servers: BrokerOpt = None,
) -> None:
    """Synthetic cameras with known visitors (UTKFace faces walking across a noisy frame).
    Prints the ground truth as JSON: number of visitors and their labels."""
    from inference.kafka_io import BrokerError
    from inference.simulate import ground_truth, plan, write_frames
    from inference.simulate import publish as publish_plans

    if publish and out:
        raise typer.BadParameter("choose one of --publish and --out")
    plans = plan(cameras, fps, duration, faces, seed=seed)
    truth = ground_truth(plans)
    if out:
        write_frames(plans, out, faces)
    if publish:
        cfg = _config(config, kafka={"bootstrap_servers": bootstrap_servers})
        try:
            truth["published"] = publish_plans(plans, cfg, faces, realtime)
        except BrokerError as exc:
            raise fail(exc) from None
    typer.echo(json.dumps(truth))


def bench_pipeline(
    cameras: Annotated[int, typer.Option(min=1, help="Simulated cameras.")] = 4,
    workers: Annotated[int, typer.Option(min=1, help="Inference workers (threads).")] = 2,
    duration: Annotated[float, typer.Option(min=3, help="Seconds of video per camera.")] = 20.0,
    realtime: Annotated[bool, typer.Option(help="Pace the cameras at 5 fps (latency) instead "
                                           "of as fast as possible (throughput).")] = False,
    faces: Annotated[Path, typer.Option(help="UTKFace-named face images.")]
    = Path("../shared/datasets/utkface/crop_part1"),
    db: Annotated[str | None, typer.Option(help="Database URL (PostgreSQL for real figures; "
                                           "must be migrated).")] = None,
    bootstrap_servers: BrokerOpt = None,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Visits/s, faces/s and p50/p95 camera -> database latency of the scaled-out pipeline
    (fresh topics and a bench-TAG store id: live data is never touched)."""
    from inference.bench_pipeline import bench_pipeline as run_bench
    from inference.kafka_io import BrokerError

    cfg = _config(config, database={"url": db},
                  kafka={"bootstrap_servers": bootstrap_servers})
    try:
        r = run_bench(cfg, cameras, workers, duration, faces=faces, realtime=realtime)
    except BrokerError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps(r))
        return
    typer.echo(f"{r['cameras']} cameras, {r['workers']} workers: {r['visits']}/{r['visitors']} "
               f"visits in {r['seconds']} s = {r['visits_per_s']} visits/s, "
               f"{r['faces_per_s']} faces/s; camera -> {r['database']} latency p50 "
               f"{r['latency_p50_s']} s, p95 {r['latency_p95_s']} s")


def register(app: typer.Typer) -> None:
    """Add the scaled-out pipeline's commands to the main `audience` app."""
    app.command("camera")(camera)
    app.command("infer")(infer)
    app.command("simulate")(simulate)
    for group in app.registered_groups:  # `audience bench pipeline`
        if group.name == "bench" and group.typer_instance is not None:
            group.typer_instance.command("pipeline")(bench_pipeline)
