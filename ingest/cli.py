"""The camera stage's commands: `audience camera`, `audience simulate`, `audience bench camera`,
`audience evaluate counting`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Protocol

import typer

from audience.core.console import echo_json
from audience.core.kafka_config import KafkaConfig
from audience.ingest.config import CameraConfig

if TYPE_CHECKING:  # the CLI starts without loading the camera stage
    from audience.ingest.counting import GenderFn


class CameraSettings(Protocol):
    """The sections of the app config the camera stage reads."""

    camera: CameraConfig
    kafka: KafkaConfig


#: The app's loader: config file + environment + these command-line values.
Load = Callable[[Path | None, dict[str, dict[str, object]]], CameraSettings]
#: The app's gender labeller for `evaluate counting` (it needs the inference stage, which
#: ingest must not import): config file -> tracks -> one label (or None) per track.
Genders = Callable[[Path | None], "GenderFn"]

ConfigOpt = Annotated[Path | None, typer.Option(help="YAML config file (camera and kafka "
                                                "sections).")]
BrokerOpt = Annotated[str | None, typer.Option(
    "--bootstrap-servers", help="Kafka brokers host:port,... (default from config).")]


def register(app: typer.Typer, bench: typer.Typer, evaluate: typer.Typer, load: Load,
             genders: Genders | None = None) -> None:
    """Add the camera stage's commands to the main `audience` app and its `bench` and
    `evaluate` groups."""

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
        face_px: Annotated[int | None, typer.Option(
            min=8, max=300, help="Face size in pixels in the 640x360 frame (default 110); "
            "small faces walk a proportionally shorter path, at the same speed in face "
            "widths.")] = None,
        config: ConfigOpt = None,
        bootstrap_servers: BrokerOpt = None,
    ) -> None:
        """Synthetic cameras with known visitors (UTKFace faces walking across a noisy frame).
        Prints the ground truth as JSON: number of visitors and their labels. With --out,
        each camera is an image folder with its truth beside it (`evaluate counting` reads
        it)."""
        from audience.ingest.simulate import ground_truth, plan, write_frames
        from audience.ingest.simulate import publish as publish_plans

        if publish and out:
            raise typer.BadParameter("choose one of --publish and --out")
        plans = plan(cameras, fps, duration, faces, seed=seed, face_px=face_px)
        truth = ground_truth(plans)
        if out:
            write_frames(plans, out, faces)
        if publish:
            cfg = load(config, {"kafka": {"bootstrap_servers": bootstrap_servers}})
            truth["published"] = publish_plans(plans, cfg.camera, cfg.kafka, faces, realtime)
        echo_json(truth)

    @bench.command("camera")
    def bench_camera(
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
        seconds: Annotated[float, typer.Option(help="Seconds to measure.")] = 10.0,
        config: ConfigOpt = None,
    ) -> None:
        """Camera-stage frames/s on 720p input (face and body detection + tracking + crop
        selection), one core, with the camera settings of the config and environment (e.g.
        AUDIENCE_CAMERA__DETECTOR__WORK_WIDTH=640; AUDIENCE_CAMERA__BODIES__ENABLED=false:
        faces only)."""
        from audience.ingest.bench import bench_camera as run_bench

        cfg = load(config, {})
        result = run_bench(seconds=seconds, threads=1, config=cfg.camera)
        if as_json:
            echo_json(result)
        else:
            bodies = "faces and bodies" if result["bodies"] else "faces only"
            typer.echo(f"camera stage: {result['fps']:.1f} frames/s on {result['resolution']} "
                       f"({result['cpu_fps']:.1f} per CPU-second; {result['threads']} thread, "
                       f"{bodies}, face detection at width {result['work_width']})")

    @evaluate.command("counting")
    def evaluate_counting(
        clips: Annotated[Path, typer.Option(
            metavar="DIR", help="Folder of clips (video files, GIFs or image folders); those "
            "with a ground-truth YAML are evaluated.")],
        truth: Annotated[list[Path] | None, typer.Option(
            metavar="DIR", help="Folder of ground-truth YAML files, if not beside the clips "
            "(repeatable; default: the annotations of ../shared/datasets/videos shipped in "
            "ingest/clips).")] = None,
        config: ConfigOpt = None,
        gender: Annotated[bool, typer.Option(help="Label the visits' gender (the analyzer) "
                                             "where the truth gives it.")] = True,
        shrink: Annotated[float, typer.Option(
            min=0.05, max=1.0, help="Shrink each clip's scene by this factor inside a frame of "
            "the same size (a camera farther away: smaller faces, same truth).")] = 1.0,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    ) -> None:
        """Count visitors (people) on annotated clips with the camera stage (config and
        environment settings apply): per clip true, counted, error, missed visitors and extra
        tracks, visitors whose face was seen and watchers (counted/true); totals with over-
        and under-counts and gender agreement. A clip's truth is `<name>.yaml`: clip,
        visitors, and optionally watchers, genders, in_view ([from, to] seconds per visitor),
        faces_seen, fps (image folders), note."""
        from audience.ingest.counting import evaluate_counting as run_eval
        from audience.ingest.counting import table

        cfg = load(config, {})
        labeller = genders(config) if gender and genders is not None else None
        report = run_eval(clips, cfg.camera, truth, labeller, shrink)
        echo_json(report) if as_json else typer.echo(table(report))
