"""The inference stage's commands: `audience infer` and `audience bench analyzer`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Protocol

import typer

from audience.core.console import echo_json
from audience.core.kafka_config import KafkaConfig
from audience.inference.config import AnalyzerConfig
from audience.storage.config import DatabaseConfig


class InferenceSettings(Protocol):
    """The sections of the app config an inference worker reads."""

    kafka: KafkaConfig
    analyzer: AnalyzerConfig
    database: DatabaseConfig


#: The app's loader: config file + environment + these command-line values.
Load = Callable[[Path | None, dict[str, dict[str, object]]], InferenceSettings]


def register(app: typer.Typer, bench: typer.Typer, load: Load) -> None:
    """Add the inference stage's commands to the main `audience` app."""

    @app.command("infer")
    def infer(
        config: Annotated[Path | None, typer.Option(
            help="YAML config file (kafka, analyzer, database sections).")] = None,
        db: Annotated[str | None, typer.Option(
            help="Database URL (env DATABASE_URL); PostgreSQL must be migrated (`audience db "
            "upgrade`).")] = None,
        bootstrap_servers: Annotated[str | None, typer.Option(
            "--bootstrap-servers", help="Kafka brokers host:port,... (default from config).")]
        = None,
        group_id: Annotated[str | None, typer.Option(help="Consumer group.")] = None,
        metrics_port: Annotated[int | None, typer.Option(help="/metrics and /healthz port "
                                                         "(0: off).")] = None,
    ) -> None:
        """Inference worker: consume tracks in a consumer group, label them in batches, store
        visits, then commit offsets. SIGTERM finishes the batch, commits and exits 0."""
        from audience.inference.worker import run_worker

        cfg = load(config, {"database": {"url": db},
                            "kafka": {"bootstrap_servers": bootstrap_servers,
                                      "group_id": group_id, "metrics_port": metrics_port}})
        worker = run_worker(cfg.kafka, cfg.analyzer, cfg.database)
        typer.echo(f"inference worker stopped: {worker.stored} visits stored, {worker.dead} "
                   "messages dead-lettered")
        code = getattr(worker.stop, "exit_code", 0)
        if code:  # Ctrl-C: 130, after the batch was stored and committed
            raise typer.Exit(code)

    @bench.command("analyzer")
    def bench_analyzer(
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
        seconds: Annotated[float, typer.Option(help="Seconds per measurement.")] = 5.0,
        baselines: Annotated[bool, typer.Option(help="Also measure the baselines if their "
                                                "environment (.venv-bench) exists.")] = True,
        weights: Annotated[Path | None, typer.Option(
            help="A model manifest (JSON) to use instead of the shipped model.")] = None,
        tta: Annotated[bool | None, typer.Option(
            "--tta/--no-tta", help="Average each face with its mirror, or not; default: what "
            "the model's manifest says.")] = None,
    ) -> None:
        """Faces/s of the full analyzer (all four heads) at batch 1, 8 and 64."""
        from audience.inference.bench import bench_analyzer as run_bench
        from audience.inference.bench import print_bench

        result = run_bench(seconds=seconds, baselines=baselines,
                           weights=str(weights) if weights else None, flip_average=tta)
        if as_json:
            echo_json(result)
        else:
            print_bench(result)
