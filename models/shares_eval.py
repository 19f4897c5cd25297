"""Shares on labelled folders: the confusion matrices a model ships, and how true its shares are.

``audience evaluate confusion`` counts each head's confusion (true rows, predicted columns) on
one or several validation splits and, with ``--write``, stores it in the model manifest under
``confusion`` (the pooled counts, and with several splits each one's counts under ``sources``),
where ``core.shares`` reads it. ``audience evaluate shares`` draws many store audiences
from a labelled folder (50-500 visitors, female share 0.2-0.8, age mixes from a young mall to a
retirement-area store), labels them with the model, and compares the raw share, the corrected
share and its interval with the mix each audience was drawn from. The matrices that score a
split never come from it (``held_out``): the coverage is of faces the matrix has not seen;
with ``leave_dataset_out``, not from its dataset either, the coverage of a kind of face no
source has. A split with
ethnicity labels may be counted per ethnic group (``by_ethnicity``), each group a source.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from audience.core.files import atomic_write_text
from audience.core.shares import (
    LEVEL,
    Confusion,
    confusions,
    estimate,
    gender_matrix,
    gender_min_age,
)
from audience.core.visit import AGE_BRACKETS, age_bracket
from audience.models.data import ETHNICITIES, GENDERS, DatasetError, cache_dir

log = logging.getLogger(__name__)

SHARED = Path("../shared/datasets")
DEFAULT_DIRS = {"utkface": (SHARED / "utkface" / "crop_part1", SHARED / "utkface" / "more"),
                "aaf": (SHARED / "aaf",), "lfw": (SHARED / "lfw",)}
DATASETS = tuple(DEFAULT_DIRS)
#: Age mixes at the two ends of the range of stores (shares of AGE_BRACKETS): a mall that
#: draws teenagers and young adults, and a store in a retirement area.
YOUNG_MALL = (0.10, 0.20, 0.30, 0.20, 0.10, 0.05, 0.03, 0.02)
RETIREMENT = (0.03, 0.02, 0.05, 0.10, 0.15, 0.20, 0.20, 0.25)


@dataclass
class Labelled:
    """One labelled split and the model's answers. Unknown truth: age NaN, gender/race -1."""

    name: str  #: "utkface:val"
    age: np.ndarray
    gender: np.ndarray
    race: np.ndarray
    pred_age: np.ndarray
    p_female: np.ndarray
    pred_race: np.ndarray

    def subset(self, mask: np.ndarray, name: str) -> Labelled:
        return Labelled(name, self.age[mask], self.gender[mask], self.race[mask],
                        self.pred_age[mask], self.p_female[mask], self.pred_race[mask])

    @property
    def bracket(self) -> np.ndarray:
        return np.array([AGE_BRACKETS.index(age_bracket(a)) if np.isfinite(a) else -1
                         for a in self.age])

    @property
    def pred_bracket(self) -> np.ndarray:
        return np.array([AGE_BRACKETS.index(age_bracket(a)) for a in self.pred_age])


def parse_spec(spec: str) -> tuple[str, str]:
    """'utkface:val' -> ('utkface', 'val'); a clear error for anything else."""
    name, _, split = spec.partition(":")
    if name not in DATASETS or split not in ("train", "val", "test"):
        raise DatasetError(f"unknown labelled split {spec!r}: use DATASET:SPLIT with DATASET one "
                           f"of {', '.join(DATASETS)} and SPLIT train, val or test")
    if name != "utkface" and split == "test":
        raise DatasetError(f"{name} has train and val splits only, not {split!r}")
    return name, split


def _folder_faces(root: Path, split: str) -> tuple[list[Path], dict[str, np.ndarray]]:
    """AAF / LFW: ``labels.csv`` (file, gender, [age], split) and ``faces/``."""
    labels = root / "labels.csv"
    if not labels.is_file():
        raise DatasetError(f"{labels} not found: pass the folder holding labels.csv and faces/")
    paths, ages, genders = [], [], []
    with open(labels, newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            if rec.get("split") != split:
                continue
            paths.append(root / "faces" / rec["file"])
            ages.append(float(rec["age"]) if rec.get("age") else np.nan)
            genders.append(GENDERS.index(rec["gender"]) if rec.get("gender") in GENDERS else -1)
    return paths, {"age": np.array(ages, np.float32), "gender": np.array(genders, np.int64),
                   "race": np.full(len(paths), -1, np.int64)}


def _read_with_landmarks(paths: Sequence[Path]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    from audience.core.images import read_image
    from audience.ingest.detect import chip_detector, chip_landmarks

    det = chip_detector()
    images, marks = [], []
    for p in paths:
        img = read_image(p, cv2.IMREAD_COLOR)
        if img is None:
            raise DatasetError(f"cannot read {p}: remove it from labels.csv or restore it")
        images.append(img)
        marks.append(chip_landmarks(img, det)[0])
    return images, marks


def predict(spec: str, weights: Path | None = None,
            dirs: dict[str, Sequence[Path]] | None = None) -> Labelled:
    """The model's answers on one labelled split, cached by file list and weights."""
    from audience.inference.analyzer import load_manifest
    from audience.models.evaluate import load_analyzer

    name, split = parse_spec(spec)
    roots = [Path(d) for d in (dirs or {}).get(name, DEFAULT_DIRS[name])]
    if name == "utkface":
        from audience.models.utk import load_utk_dirs

        utk = load_utk_dirs(roots, split=split)
        paths = utk.paths
        truth = {"age": utk.age.astype(np.float32), "gender": utk.gender, "race": utk.race}
    else:
        paths, truth = _folder_faces(roots[0], split)
    if not paths:
        raise DatasetError(f"no faces for {spec} in {', '.join(map(str, roots))}")
    manifest, onnx = load_manifest(weights)
    key = hashlib.sha1(("|".join(str(p) for p in paths) + manifest["sha256"])
                       .encode()).hexdigest()[:16]
    cached = cache_dir() / f"shares_{name}_{split}_{key}.npz"
    if cached.is_file():
        z = np.load(cached)
        preds = {k: z[k] for k in ("pred_age", "p_female", "pred_race")}
    else:
        analyzer = load_analyzer("age,gender,ethnicity", weights=weights)
        images, marks = _read_with_landmarks(paths) if name != "utkface" else _utk(utk)
        attrs = analyzer.analyze(images, marks)
        preds = {"pred_age": np.array([a.age for a in attrs], np.float32),
                 "p_female": np.array([a.p_female for a in attrs], np.float32),
                 "pred_race": np.array([ETHNICITIES.index(a.ethnicity) for a in attrs])}
        np.savez(cached, **preds)
    log.info("%s: %d faces labelled by %s", spec, len(paths), onnx.name)
    return Labelled(spec, truth["age"], truth["gender"], truth["race"], **preds)


def _utk(data) -> tuple[list[np.ndarray], list[np.ndarray]]:
    from audience.models.data import read_utk_chips

    return read_utk_chips(data)


def count_confusions(lab: Labelled, min_age: float, source: str) -> dict[str, Confusion]:
    """Per head: gender over faces the model reads as ``min_age`` or older (younger ones get
    no gender), age brackets and ethnicity where the truth is known."""
    out = {}
    g = (lab.gender >= 0) & (lab.pred_age >= min_age)
    if g.any():
        pred_g = (lab.p_female[g] >= 0.5).astype(int)
        pooled = _count("gender", GENDERS, lab.gender[g], pred_g, source)
        by_age = None
        if np.isfinite(lab.age).all():  # gender mistakes per true age bracket
            by_age = np.zeros((len(AGE_BRACKETS), 2, 2), np.int64)
            np.add.at(by_age, (lab.bracket[g], lab.gender[g], pred_g), 1)
        out["gender"] = Confusion("gender", GENDERS, pooled.counts, source, by_age)
    a = np.isfinite(lab.age)
    if a.any():
        out["age_bracket"] = _count("age_bracket", AGE_BRACKETS, lab.bracket[a],
                                    lab.pred_bracket[a], source)
    e = lab.race >= 0
    if e.any():
        out["ethnicity"] = _count("ethnicity", ETHNICITIES, lab.race[e], lab.pred_race[e], source)
    return out


def count_emotion(csv_path: Path, weights: Path | None, source: str,
                  split: str = "PublicTest") -> Confusion:
    """The emotion head's confusion on FER-2013's validation split (PublicTest)."""
    from audience.models.data import EMOTIONS, load_fer2013
    from audience.models.evaluate import frame_emotions, load_analyzer

    data = load_fer2013(csv_path, splits=(split,))
    if not len(data.labels):
        raise DatasetError(f"no rows with Usage={split} in {csv_path}: pass the FER-2013 CSV")
    pred = frame_emotions(load_analyzer("emotion", weights=weights), data.images)
    return _count("emotion", EMOTIONS, data.labels, pred.argmax(1), source)


def _count(head: str, classes: Sequence[str], y: np.ndarray, pred: np.ndarray,
           source: str) -> Confusion:
    cm = np.zeros((len(classes), len(classes)), np.int64)
    np.add.at(cm, (y, pred), 1)
    return Confusion(head, tuple(classes), cm, source)


def count_sources(specs: Sequence[str], weights: Path | None, min_age: float,
                  dirs: dict[str, Sequence[Path]] | None = None, by_ethnicity: bool = False
                  ) -> dict[str, dict[str, Confusion]]:
    """Each split's matrices, named by the split: {"lfw:val": {"gender": ...}, ...}.
    ``by_ethnicity``: a split with ethnicity labels (UTKFace) counts each ethnic group as a
    source of its own ("utkface:val/asian"), a kind of face whose confusion may differ."""
    out = {}
    for spec in dict.fromkeys(specs):
        lab = predict(spec, weights, dirs)
        if by_ethnicity and (lab.race >= 0).any():
            for r, group in enumerate(ETHNICITIES):
                if (lab.race == r).any():
                    name = f"{spec}/{group}"
                    out[name] = count_confusions(lab.subset(lab.race == r, name), min_age, name)
        else:
            out[spec] = count_confusions(lab, min_age, spec)
    return out


def split_of(source: str) -> str:
    """The labelled split a source was counted on: "utkface:val/asian" -> "utkface:val"."""
    return source.partition("/")[0]


def pool_sources(per_source: dict[str, dict[str, Confusion]], names: Sequence[str],
                 version: str) -> dict[str, Confusion]:
    """Per head, the matrix pooled over these sources (those that count the head), named
    "utkface:val + lfw:val, 2.4.0" (a split counted per ethnic group: "utkface:val by
    ethnicity"); one source gives today's single matrix."""
    out = {}
    heads = dict.fromkeys(h for n in names for h in per_source[n])
    for head in heads:
        parts = [per_source[n][head] for n in names if head in per_source[n]]
        splits = dict.fromkeys(split_of(p.source) for p in parts)
        label = " + ".join(sp + (" by ethnicity" if any(p.source.startswith(sp + "/")
                                                         for p in parts) else "")
                           for sp in splits)
        out[head] = Confusion.pooled(parts, f"{label}, {version}")
    return out


def manifest_sources(found: dict[str, Confusion]) -> dict[str, dict[str, Confusion]]:
    """The manifest's matrices as per-source counts (a head without sources is one source,
    named by its ``source`` up to the version)."""
    out: dict[str, dict[str, Confusion]] = {}
    for head, c in found.items():
        for part in c.sources or (Confusion(head, c.classes, c.counts,
                                            c.source.split(",")[0], c.by_age_counts),):
            out.setdefault(part.source, {})[head] = part
    return out


#: The faces the model was trained on: a store is scored with a matrix that includes them,
#: so their other split stays in the matrix that scores one of them.
HOME = "utkface"


def held_out(spec: str, names: Sequence[str], leave_dataset_out: bool = False) -> list[str]:
    """The sources that may score ``spec``: never the split itself (nor its ethnic groups).
    ``leave_dataset_out``: where another dataset's counts are among them, none of its own
    dataset either (UTKFace keeps its other split): the coverage of a kind of face no source
    has."""
    name, _ = parse_spec(spec)
    others = [n for n in names if split_of(n) != spec]
    datasets = {n.partition(":")[0] for n in others} & set(DATASETS)  # not fer2013's emotion
    if leave_dataset_out and datasets - {name} and name != HOME:
        others = [n for n in others if n.partition(":")[0] != name]
    return others


def write_confusions(manifest_path: Path, found: dict[str, Confusion]) -> Path:
    """Store the matrices in the manifest's ``confusion`` section (others kept as they are).
    The weights file and its sha256 are untouched."""
    manifest = json.loads(manifest_path.read_text())
    section = dict(manifest.get("confusion") or {})
    section.update({head: c.to_json() for head, c in found.items()})
    manifest["confusion"] = section
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")
    return manifest_path


# -- drawn audiences ----------------------------------------------------------------------------

@dataclass
class Audience:
    idx: np.ndarray  #: faces of the pool, one per visitor
    female: float  #: the mix's female share
    ages: np.ndarray  #: the mix's share of each age bracket (NaN: the pool has no ages)


def draw_audience(lab: Labelled, rng: np.random.Generator) -> Audience | None:
    n = int(rng.integers(50, 501))
    female = float(rng.uniform(0.2, 0.8))
    has_age = np.isfinite(lab.age).any()
    bracket = lab.bracket
    genders = np.where(lab.gender >= 0, lab.gender, -1)
    if has_age:
        t = rng.uniform()
        mix = (1 - t) * np.array(YOUNG_MALL) + t * np.array(RETIREMENT)
        present = np.array([((bracket == b) & (genders == 0)).any()
                            and ((bracket == b) & (genders == 1)).any()
                            for b in range(len(AGE_BRACKETS))])
        mix = np.where(present, mix, 0.0)
        mix /= mix.sum()
    else:
        mix = np.full(len(AGE_BRACKETS), np.nan)
    g = (rng.uniform(size=n) < female).astype(int)
    b = rng.choice(len(AGE_BRACKETS), size=n, p=mix) if has_age else np.full(n, -1)
    idx = np.empty(n, np.int64)
    for gi in (0, 1):
        for bi in np.unique(b):
            sel = (g == gi) & (b == bi)
            pool = np.flatnonzero((genders == gi) & ((bracket == bi) if has_age else True))
            if sel.any():
                idx[sel] = rng.choice(pool, size=int(sel.sum()))
    return Audience(idx, female, mix)


@dataclass
class HeadScore:
    raw: list[float]
    corrected: list[float]
    covered: list[bool]


def score_audiences(lab: Labelled, found: dict[str, Confusion], n_audiences: int, seed: int,
                    min_age: float, draws: int = 500) -> dict[str, dict[str, Any]]:
    """Per head: mean and 95th-percentile absolute error of the raw and the corrected shares
    (every class of the head pooled), and how often the LEVEL interval covers the mix."""
    rng = np.random.default_rng(seed)
    scores: dict[str, HeadScore] = {}
    pred_g = (lab.p_female >= 0.5).astype(int)
    pred_b = lab.pred_bracket
    for a in range(n_audiences):
        aud = draw_audience(lab, rng)
        if aud is None:
            continue
        heads: list[tuple[str, Sequence[str], np.ndarray, np.ndarray]] = []
        told = lab.pred_age[aud.idx] >= min_age  # children's gender is not reported
        heads.append(("gender", GENDERS, pred_g[aud.idx][told],
                      np.array([1 - aud.female, aud.female])))
        if np.isfinite(aud.ages).all():
            heads.append(("age_bracket", AGE_BRACKETS, pred_b[aud.idx], aud.ages))
        # the audience's age mix as the report estimates it, for the gender matrix
        ages = estimate("age_bracket", {c: int((pred_b[aud.idx] == i).sum())
                                        for i, c in enumerate(AGE_BRACKETS)},
                        found.get("age_bracket"), LEVEL, draws, seed=a)
        for head, classes, pred, truth in heads:
            if not len(pred):
                continue
            counts = {c: int((pred == i).sum()) for i, c in enumerate(classes)}
            matrix = found.get(head)
            if head == "gender" and matrix is not None:
                matrix = gender_matrix(matrix, ages, min_age)
            est = estimate(head, counts, matrix, LEVEL, draws, seed=a)
            s = scores.setdefault(head, HeadScore([], [], []))
            for share, t in zip(est.shares, truth, strict=True):
                if t == 0 and head == "age_bracket":
                    continue  # a bracket the pool cannot show (AAF has no adults)
                s.raw.append(abs(share.raw - t))
                s.corrected.append(abs(share.share - t))
                s.covered.append(share.low <= t <= share.high)
    return {head: {"raw_mae": _r(np.mean(s.raw)), "raw_p95": _r(np.percentile(s.raw, 95)),
                   "corrected_mae": _r(np.mean(s.corrected)),
                   "corrected_p95": _r(np.percentile(s.corrected, 95)),
                   "coverage": _r(np.mean(s.covered)), "n_shares": len(s.raw),
                   "confusion": found[head].source if head in found else "none"}
            for head, s in scores.items()}


def _r(x: Any) -> float:
    return round(float(x), 4)


def evaluate_shares(specs: Sequence[str], confusion: Sequence[str] | str | None = None,
                    weights: Path | None = None, dirs: dict[str, Sequence[Path]] | None = None,
                    audiences: int = 400, seed: int = 0, draws: int = 500,
                    by_ethnicity: bool = False, leave_dataset_out: bool = False) -> dict:
    """The table of ``audience evaluate shares``. ``confusion``: DATASET:SPLITs to count the
    matrices on, or None for the manifest's own; each split evaluated is scored with the
    sources ``held_out`` allows (never itself; with ``leave_dataset_out`` nor its dataset
    where others are given)."""
    from audience.inference.analyzer import load_manifest

    manifest, _ = load_manifest(weights)
    min_age = gender_min_age(manifest)
    version = str(manifest["version"])
    if isinstance(confusion, str):
        confusion = [confusion]
    if confusion:
        for c in confusion:
            parse_spec(c)
        per_source = count_sources(confusion, weights, min_age, dirs, by_ethnicity)
    else:
        per_source = manifest_sources(confusions(manifest))
    rows = []
    for spec in specs:
        parse_spec(spec)
        names = held_out(spec, list(per_source), leave_dataset_out)
        if not any(h in per_source[n] for n in names for h in ("gender", "age_bracket")):
            raise DatasetError(f"the confusion matrices were counted on {spec} only: evaluate "
                               "another split, or pass --confusion DATASET:SPLIT")
        found = pool_sources(per_source, names, version)
        lab = predict(spec, weights, dirs)
        for head, m in score_audiences(lab, found, audiences, seed, min_age, draws).items():
            rows.append({"data": spec, "head": head, **m})
    return {"model": f"{manifest['name']}-{version}", "audiences": audiences,
            "seed": seed, "level": LEVEL, "gender_min_age": min_age, "rows": rows}


def table(result: dict) -> str:
    """The result as a Markdown table."""
    lines = [f"| data | head | raw share: mean / p95 abs. error | corrected: mean / p95 | "
             f"{result['level']:.0%} interval covers | confusion from |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['data']} | {r['head']} | {100 * r['raw_mae']:.1f} / "
                     f"{100 * r['raw_p95']:.1f} pts | {100 * r['corrected_mae']:.1f} / "
                     f"{100 * r['corrected_p95']:.1f} pts | {100 * r['coverage']:.0f}% | "
                     f"{r['confusion']} |")
    return "\n".join(lines)
