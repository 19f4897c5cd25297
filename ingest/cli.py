"""The camera stage's commands: `audience camera`, `audience simulate`, `audience bench camera`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Protocol

import typer

from audience.core.kafka_config import KafkaConfig
from audience.ingest.config import CameraConfig


class CameraSettings(Protocol):
    """The sections of the app config the camera stage reads."""

    camera: CameraConfig
    kafka: KafkaConfig


#: The app's loader: config file + environment + these command-line values.
Load = Callable[[Path | None, dict[str, dict[str, object]]], CameraSettings]

ConfigOpt = Annotated[Path | None, typer.Option(help="YAML config file (camera and kafka "
                                                "sections).")]
BrokerOpt = Annotated[str | None, typer.Option(
    "--bootstrap-servers", help="Kafka brokers host:port,... (default from config).")]


def register(app: typer.Typer, bench: typer.Typer, load: Load) -> None:
    """Add the camera stage's commands to the main `audience` app."""

    @app.command("camera")
    def camera(
        config: ConfigOpt = None,
        source: Annotated[str | None, typer.Option(help="Video file, image folder, URL or "
                                                   "webcam index (default from config).")]
        = None,
        store: Annotated[str | None, typer.Option(help="Store id.")] = None,
        camera_id: Annotated[str | None, typer.Option("--camera", help="Camera id.")] = None,
        bootstrap_servers: BrokerOpt = None,
        metrics_port: Annotated[int | None, typer.Option(help="/metrics and /healthz port "
                                                         "(0: off).")] = None,
    ) -> None:
        """Camera worker: analyse one camera's frames and publish each finished track (best
        face crops, no identity) to Kafka. SIGTERM ends the open tracks, flushes and exits 0."""
        from audience.ingest.publisher import run_camera

        cfg = load(config, {"camera": {"source": source, "store": store, "id": camera_id},
                            "kafka": {"bootstrap_servers": bootstrap_servers,
                                      "metrics_port": metrics_port}})
        summary = run_camera(cfg.camera, cfg.kafka)
        typer.echo(f"camera {cfg.camera.id}: {summary.frames} frames, {summary.tracks} tracks "
                   f"published to {cfg.kafka.tracks_topic}")
        if summary.exit_code:  # Ctrl-C: the work is saved, the shell still learns of it
            raise typer.Exit(summary.exit_code)

    @app.command("simulate")
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
        realtime: Annotated[bool, typer.Option(help="Pace frames at --fps (load tests).")]
        = False,
        seed: Annotated[int, typer.Option(help="Random seed (which faces).")] = 0,
        config: ConfigOpt = None,
        bootstrap_servers: BrokerOpt = None,
    ) -> None:
        """Synthetic cameras with known visitors (UTKFace faces walking across a noisy frame).
        Prints the ground truth as JSON: number of visitors and their labels."""
        from audience.ingest.simulate import ground_truth, plan, write_frames
        from audience.ingest.simulate import publish as publish_plans

        if publish and out:
            raise typer.BadParameter("choose one of --publish and --out")
        plans = plan(cameras, fps, duration, faces, seed=seed)
        truth = ground_truth(plans)
        if out:
            write_frames(plans, out, faces)
        if publish:
            cfg = load(config, {"kafka": {"bootstrap_servers": bootstrap_servers}})
            truth["published"] = publish_plans(plans, cfg.camera, cfg.kafka, faces, realtime)
        typer.echo(json.dumps(truth))

    @bench.command("camera")
    def bench_camera(
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
        seconds: Annotated[float, typer.Option(help="Seconds to measure.")] = 10.0,
    ) -> None:
        """Camera-stage frames/s on 720p input (detection + tracking + crop selection), one
        core."""
        from audience.ingest.bench import bench_camera as run_bench

        result = run_bench(seconds=seconds, threads=1)
        if as_json:
            typer.echo(json.dumps(result))
        else:
            typer.echo(f"camera stage: {result['fps']:.1f} frames/s on {result['resolution']} "
                       f"({result['threads']} thread, detection at width "
                       f"{result['work_width']})")
