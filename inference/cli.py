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


config_opt = Annotated[Path | None, typer.Option(help="YAML config file (kafka section).")]
servers_opt = Annotated[str | None, typer.Option(
    "--bootstrap-servers", help="Kafka brokers host:port,... (default from config).")]
topic_opt = Annotated[str | None, typer.Option(
    "--dlq-topic", help="Dead-letter topic (default from config: kafka.dlq_topic).")]

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

    dlq = typer.Typer(help="The dead-letter topic: messages a worker could not store (a "
                      "message's own fault). List them; replay them once the cause is fixed.",
                      no_args_is_help=True)
    app.add_typer(dlq, name="dlq")

    @dlq.command("list")
    def dlq_list(config: config_opt = None, bootstrap_servers: servers_opt = None,
                 dlq_topic: topic_opt = None,
                 as_json: Annotated[bool, typer.Option("--json", help="One JSON object per "
                                                       "line.")] = False) -> None:
        """Every dead letter: when, why (reason), and where it came from (topic, partition,
        offset). Never the message itself (it holds face crops)."""
        from audience.inference.dlq import read_dead_letters

        cfg = load(config, {"kafka": {"bootstrap_servers": bootstrap_servers,
                                      "dlq_topic": dlq_topic}})
        letters = read_dead_letters(cfg.kafka)
        if as_json:
            for d in letters:
                echo_json(d.row())
            return
        typer.echo(f"{len(letters)} dead letter(s) in {cfg.kafka.dlq_topic}")
        for d in letters:
            r = d.row()
            typer.echo(f"{r['time']}  {r['topic']}[{r['partition']}]@{r['offset']}  "
                       f"{'' if r['replayable'] else '(not replayable) '}{r['reason']}")

    @dlq.command("replay")
    def dlq_replay(config: config_opt = None, bootstrap_servers: servers_opt = None,
                   dlq_topic: topic_opt = None,
                   reason: Annotated[str | None, typer.Option(
                       help="Only dead letters whose reason contains this text (any case), "
                       "e.g. 'database refused'.")] = None,
                   dry_run: Annotated[bool, typer.Option(
                       "--dry-run", help="Count what would be replayed; send nothing.")]
                   = False) -> None:
        """Send dead letters back to the tracks topic (all, or those with --reason), e.g.
        after fixing what the database refused. A replayed visit is stored once, however
        often it is replayed; the dead letters stay (the topic's retention ends them)."""
        from audience.inference.dlq import replay

        cfg = load(config, {"kafka": {"bootstrap_servers": bootstrap_servers,
                                      "dlq_topic": dlq_topic}})
        done = replay(cfg.kafka, reason, dry_run)
        verb = "would replay" if dry_run else "replayed"
        count = done.matched - done.not_replayable if dry_run else done.replayed
        typer.echo(f"{verb} {count} of {done.matched} matching dead letter(s) into "
                   f"{cfg.kafka.tracks_topic}" + (f"; {done.not_replayable} not replayable "
                                                  "(message cut to fit the dead-letter topic)"
                                                  if done.not_replayable else ""))

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
