"""The model card's "where each head looks" figures (`make explain-figures`).

For each head, a fixed grid of faces from the validation splits (a few per class, drawn with a
fixed seed): FER-2013 PublicTest for emotion; UTKFace val and AAF val (children) for age;
UTKFace val, AAF val and LFW val for gender; UTKFace val for ethnicity. Each cell shows the
face as the model frames it (FER-2013 rows as they are, the other chips aligned as
`audience analyze --aligned` aligns them), its true and predicted label, and both maps
(:mod:`models.explain`: guided back-propagation, then Grad-CAM). Written as small palette
PNGs to ``models/figures/explain-<head>.png``.

    python -m audience.models.explain_figures [--out models/figures] [--heads gender,age]
"""

from __future__ import annotations

import argparse
import csv
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from audience.core.errors import InputError
from audience.core.visit import AGE_BRACKETS, age_bracket
from audience.models.data import EMOTIONS, ETHNICITIES, GENDERS, load_fer2013
from audience.models.explain import (
    HEADS,
    Explained,
    Explainer,
    explain_faces,
    network_for,
    overlay,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

DATASETS = Path("../shared/datasets")
PER_CLASS = 2  # faces per class and dataset
SEED = 0
SIDE = 96  # pixels per picture in the grid (the model sees 48)
COLUMNS = 4  # cells per row


@dataclass
class Sample:
    dataset: str
    truth: str
    image: np.ndarray
    landmarks: np.ndarray | None


def _pick(groups: Mapping[str, Sequence[T]], n: int, rng: np.random.Generator,
          ) -> list[tuple[str, T]]:
    """``n`` items of each group (drawn from its fixed order), in group order."""
    out: list[tuple[str, T]] = []
    for key, items in groups.items():
        if not items:
            continue
        for i in sorted(rng.choice(len(items), size=min(n, len(items)), replace=False)):
            out.append((key, items[int(i)]))
    return out


@lru_cache(maxsize=1)
def _detector():
    from audience.ingest.detect import chip_detector

    return chip_detector()


def _chips(dataset: str, picked: list[tuple[str, Path]]) -> list[Sample]:
    """Face chips, landmarked as `audience analyze --aligned` and the evaluations do."""
    from audience.ingest.detect import chip_landmarks

    out = []
    for truth, path in picked:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"cannot read {path}: restore the dataset file")
        marks, _ = chip_landmarks(img, _detector())
        out.append(Sample(dataset, truth, img, marks))
    return out


def _labels(folder: Path) -> list[dict[str, str]]:
    path = folder / "labels.csv"
    if not path.is_file():
        raise InputError(f"{path} not found: the figure needs the {folder.name} dataset "
                         f"under {folder.parent}")
    with path.open(newline="") as f:
        return [row for row in csv.DictReader(f) if row.get("split") == "val"]


def fer_public(datasets: Path, rng: np.random.Generator, per_class: int) -> list[Sample]:
    data = load_fer2013(datasets / "fer2013" / "fer2013.csv.gz", splits=("PublicTest",))
    groups = {e: [int(i) for i in np.flatnonzero(data.labels == k)]
              for k, e in enumerate(EMOTIONS)}
    return [Sample("FER-2013", truth, data.images[i], None)
            for truth, i in _pick(groups, per_class, rng)]


@lru_cache(maxsize=1)
def utk_val(datasets: Path):
    from audience.models.utk import load_utk_dirs

    folder = datasets / "utkface"
    return load_utk_dirs([folder / "crop_part1", folder / "more"], split="val")


def samples(head: str, datasets: Path = DATASETS, seed: int = SEED,
            per_class: int = PER_CLASS) -> list[Sample]:
    """The fixed grid of faces for ``head``: ``per_class`` per class and dataset."""
    rng = np.random.default_rng(seed)
    if head == "emotion":
        return fer_public(datasets, rng, per_class)
    utk = utk_val(datasets)
    aaf = _labels(datasets / "aaf")
    out: list[Sample] = []
    if head == "age":
        # One UTKFace chip per age bracket, then children and teenagers from AAF.
        by_bracket = {b: [(int(a), p) for p, a in zip(utk.paths, utk.age, strict=True)
                          if age_bracket(float(a)) == b] for b in AGE_BRACKETS}
        picked = _pick(by_bracket, max(1, per_class // 2), rng)
        out += _chips("UTKFace", [(f"{a} y", p) for _, (a, p) in picked])
        kids = {b: [(int(r["age"]), datasets / "aaf" / "faces" / r["file"]) for r in aaf
                    if age_bracket(float(r["age"])) == b] for b in ("0-12", "13-17")}
        out += _chips("AAF", [(f"{a} y", p) for _, (a, p) in _pick(kids, per_class, rng)])
    elif head == "gender":
        groups = {g: [p for p, y in zip(utk.paths, utk.gender, strict=True) if y == k]
                  for k, g in enumerate(GENDERS)}
        out += _chips("UTKFace", _pick(groups, per_class, rng))
        for name in ("aaf", "lfw"):
            rows = aaf if name == "aaf" else _labels(datasets / "lfw")
            by = {g: [datasets / name / "faces" / r["file"] for r in rows if r["gender"] == g]
                  for g in GENDERS}
            out += _chips(name.upper(), _pick(by, per_class, rng))
    elif head == "ethnicity":
        groups = {e: [p for p, y in zip(utk.paths, utk.race, strict=True) if y == k]
                  for k, e in enumerate(ETHNICITIES)}
        out += _chips("UTKFace", _pick(groups, per_class, rng))
    else:
        raise InputError(f"unknown head {head!r}: choose one of {', '.join(HEADS)}")
    return out


def _text(img: np.ndarray, text: str, y: int, scale: float = 0.36,
          colour: tuple[int, int, int] = (0, 0, 0)) -> None:
    cv2.putText(img, text, (3, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def cell(sample: Sample, guided: Explained, gradcam: Explained) -> np.ndarray:
    face = guided.face
    row = np.hstack([face, overlay(face, guided.heat), overlay(face, gradcam.heat)])
    caption = np.full((30, row.shape[1], 3), 255, np.uint8)
    score = f" {guided.score:.2f}" if guided.score is not None else ""
    _text(caption, f"{sample.dataset}: {sample.truth}", 12)
    _text(caption, f"model: {guided.label}{score}", 26, colour=(90, 90, 90))
    return np.vstack([caption, row])


def figure(head: str, datasets: Path = DATASETS, seed: int = SEED) -> tuple[np.ndarray, str]:
    """The grid for ``head`` (BGR uint8) and the network's note."""
    network = network_for(head)
    explainer = Explainer(head, network)
    grid = samples(head, datasets, seed)
    faces = [(s.image, s.landmarks) for s in grid]
    guided = explain_faces(explainer, faces, "guided", SIDE)
    gradcam = explain_faces(explainer, faces, "gradcam", SIDE)
    cells = [cell(s, g, c) for s, g, c in zip(grid, guided, gradcam, strict=True)]
    gap = 8
    h, w = cells[0].shape[:2]
    rows = -(-len(cells) // COLUMNS)
    title_h = 38
    canvas = np.full((title_h + rows * (h + gap), COLUMNS * (w + gap) - gap, 3), 255, np.uint8)
    for i, c in enumerate(cells):
        y, x = title_h + (i // COLUMNS) * (h + gap), (i % COLUMNS) * (w + gap)
        canvas[y:y + h, x:x + w] = c
    sources = ", ".join(dict.fromkeys(s.dataset for s in grid))
    _text(canvas, f"Where the {head} head looks: face | guided back-propagation | Grad-CAM "
                  f"(last conv block); red = most. {sources} validation faces, seed {seed}.",
          14, 0.42)
    _text(canvas, network.note, 31, 0.38, (90, 90, 90))
    return canvas, network.note


# -- a measured reading: where the map's mass lies ---------------------------------------------
def regions(size: int) -> dict[str, np.ndarray]:
    """Disjoint masks over the model's framing: ``inner`` (eyes, nose and mouth: the five
    template landmarks' hull, grown 1.5x about its centre), ``edge`` (the outer eighth of
    the crop: where hair, ears and background show), ``rest`` (forehead, cheeks, chin)."""
    from audience.core.preprocess import TEMPLATE

    pts = TEMPLATE * size
    centre = pts.mean(0)
    hull = cv2.convexHull(((pts - centre) * 1.5 + centre).astype(np.int32))
    inner = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(inner, hull, 1)
    ring = size // 8
    edge = np.ones((size, size), bool)
    edge[ring:size - ring, ring:size - ring] = False
    inner_b = inner.astype(bool) & ~edge
    return {"inner": inner_b, "edge": edge, "rest": ~inner_b & ~edge}


def measure(head: str, per_class: int, datasets: Path = DATASETS, seed: int = SEED) -> dict:
    """Per dataset of ``head``'s grid drawn with ``per_class`` faces per class, the mean
    share of each map's mass in each region (:func:`regions`), beside the region's share of
    the area (what a map spread evenly would give)."""
    network = network_for(head)
    explainer = Explainer(head, network)
    grid = samples(head, datasets, seed, per_class)
    masks = regions(explainer.size)
    out: dict = {"network": network.name, "area": {k: round(float(m.mean()), 3)
                                                   for k, m in masks.items()}, "datasets": {}}
    for name in dict.fromkeys(s.dataset for s in grid):
        chosen = [s for s in grid if s.dataset == name]
        faces = [(s.image, s.landmarks) for s in chosen]
        row: dict[str, object] = {"n": len(chosen)}
        for method in ("guided", "gradcam"):
            heat = np.stack([e.heat for e in explain_faces(explainer, faces, method)])
            mass = heat / np.maximum(heat.sum(axis=(1, 2), keepdims=True), 1e-12)
            row[method] = {k: round(float((mass * m).sum(axis=(1, 2)).mean()), 3)
                           for k, m in masks.items()}
        out["datasets"][name] = row
    return out


def save_small(image: np.ndarray, path: Path, colours: int = 256) -> int:
    """A palette PNG (a few hundred KB at most for a grid of faces); returns its size."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    rgb.quantize(colours, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path.stat().st_size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("models/figures"))
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--heads", default=",".join(HEADS))
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--measure", type=int, default=0, metavar="K",
                        help="instead of the figures, print where the maps' mass lies on K "
                        "validation faces per class and dataset (one JSON line per head)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.measure:
        import json

        for head in [h.strip() for h in args.heads.split(",") if h.strip()]:
            print(json.dumps({"head": head, **measure(head, args.measure, args.datasets,
                                                      args.seed)}))
        return
    for head in [h.strip() for h in args.heads.split(",") if h.strip()]:
        image, note = figure(head, args.datasets, args.seed)
        path = args.out / f"explain-{head}.png"
        size = save_small(image, path)
        print(f"{path}: {image.shape[1]}x{image.shape[0]}, {size // 1024} KB; {note}")


if __name__ == "__main__":
    main()
