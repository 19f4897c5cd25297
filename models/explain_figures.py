"""The model card's "where each head looks" figures (`make explain-figures`).

For each head, a fixed grid of faces from the validation splits (a few per class, drawn with a
fixed seed): FER-2013 PublicTest for emotion; UTKFace val and AAF val (children) for age;
UTKFace val, AAF val and LFW val for gender; UTKFace val for ethnicity. Each cell shows the
face as the model frames it (FER-2013 rows as they are; UTKFace chips aligned as `audience
evaluate utkface` aligns them; AAF and LFW faces found and aligned as `audience analyze` and
`audience evaluate wild` find them), its true and predicted label, and both maps
(:mod:`models.explain`: guided back-propagation, then Grad-CAM). Written as small palette
PNGs to ``models/figures/explain-<head>.png``.

    python -m audience.models.explain_figures [--out models/figures] [--heads gender,age]
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

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


@lru_cache(maxsize=2)
def _detector(chips: bool):
    from audience.ingest.detect import YuNetDetector, chip_detector

    # UTKFace chips as `audience evaluate utkface` landmarks them; whole images (AAF, LFW)
    # as `audience analyze` and `audience evaluate wild` find faces.
    return chip_detector() if chips else YuNetDetector(work_width=1280)


def _landmarks(img: np.ndarray, chips: bool) -> np.ndarray | None:
    from audience.ingest.detect import chip_landmarks

    if chips:
        return chip_landmarks(img, _detector(True))[0]
    faces = _detector(False).detect(img)
    if not faces:
        return None  # not found: the next face of the class takes its place
    return max(faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
               ).landmarks


def _faces(dataset: str, groups: Mapping[str, Sequence[tuple[str, Path]]], n: int,
           rng: np.random.Generator, chips: bool) -> list[Sample]:
    """``n`` faces of each group (in a seeded order of its files), group after group; each
    group item is (the truth to print, the image file)."""
    out: list[Sample] = []
    for items in groups.values():
        taken = 0
        for i in rng.permutation(len(items)):
            if taken == n:
                break
            truth, path = items[int(i)]
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                raise InputError(f"cannot read {path}: restore the dataset file")
            marks = _landmarks(img, chips)
            if marks is not None:
                out.append(Sample(dataset, truth, img, marks))
                taken += 1
    return out


def fer_public(datasets: Path, rng: np.random.Generator, per_class: int) -> list[Sample]:
    """FER-2013 rows as `audience evaluate fer2013` feeds them: the 48x48 face as framed."""
    data = load_fer2013(datasets / "fer2013" / "fer2013.csv.gz", splits=("PublicTest",))
    out = []
    for k, emotion in enumerate(EMOTIONS):
        rows = np.flatnonzero(data.labels == k)
        for i in rng.permutation(len(rows))[:per_class]:
            out.append(Sample("FER-2013", emotion, data.images[rows[i]], None))
    return out


@lru_cache(maxsize=1)
def utk_val(datasets: Path):
    from audience.models.utk import load_utk_dirs

    folder = datasets / "utkface"
    return load_utk_dirs([folder / "crop_part1", folder / "more"], split="val")


def wild_val(datasets: Path, name: str):
    from audience.models.wild import load_wild

    return load_wild(datasets / name, split="val")


def samples(head: str, datasets: Path = DATASETS, seed: int = SEED,
            per_class: int = PER_CLASS) -> list[Sample]:
    """The fixed grid of faces for ``head``: ``per_class`` per class and dataset."""
    rng = np.random.default_rng(seed)
    if head == "emotion":
        return fer_public(datasets, rng, per_class)
    utk = utk_val(datasets)
    out: list[Sample] = []
    if head == "age":
        # UTKFace chips per age bracket, then children and teenagers from AAF.
        by_bracket = {b: [(f"{a:.0f} y", p) for p, a in zip(utk.paths, utk.age, strict=True)
                          if age_bracket(float(a)) == b] for b in AGE_BRACKETS}
        out += _faces("UTKFace", by_bracket, max(1, per_class // 2), rng, chips=True)
        aaf = wild_val(datasets, "aaf")
        kids = {b: [(f"{a:.0f} y", p) for p, a in zip(aaf.paths, aaf.age, strict=True)
                    if age_bracket(float(a)) == b] for b in ("0-12", "13-17")}
        out += _faces("AAF", kids, per_class, rng, chips=False)
    elif head == "gender":
        groups = {g: [(g, p) for p, y in zip(utk.paths, utk.gender, strict=True) if y == k]
                  for k, g in enumerate(GENDERS)}
        out += _faces("UTKFace", groups, per_class, rng, chips=True)
        for name in ("aaf", "lfw"):
            wild = wild_val(datasets, name)
            by = {g: [(g, p) for p, y in zip(wild.paths, wild.gender, strict=True) if y == k]
                  for k, g in enumerate(GENDERS)}
            out += _faces(name.upper(), by, per_class, rng, chips=False)
    elif head == "ethnicity":
        groups = {e: [(e, p) for p, y in zip(utk.paths, utk.race, strict=True) if y == k]
                  for k, e in enumerate(ETHNICITIES)}
        out += _faces("UTKFace", groups, per_class, rng, chips=True)
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
