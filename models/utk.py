"""UTKFace from several folders at once (``crop_part1/`` + ``more/``), de-duplicated by content.

UTKFace holds about 390 byte-identical twins under different names, some with different
labels. The rule (:func:`dedup_rule`): a group of identical chips whose labels disagree is
dropped entirely (we cannot know which label is right); a group that agrees keeps one chip.
The kept chip is the one in the most held-out split (test, then val, then train), so a test
chip never has a twin in training, and every chip of a folder's test split that survives
de-duplication stays in test (the split is still ``models.data.utk_split`` of the file name).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from audience.models.data import (
    UtkData,
    cache_dir,
    chip_detector,
    chip_landmarks,
    load_utkface,
    utk_split,
)

log = logging.getLogger(__name__)

#: Which member of an agreeing twin group is kept: the most held-out split wins.
_SPLIT_RANK = {"test": 0, "val": 1, "train": 2}


def dedup_rule(items: Sequence[tuple[str, tuple[int, int, int], str]]) -> list[int]:
    """Indices of the items to keep, in input order.

    ``items`` are ``(content_key, (age, gender, race), split)``. Items with a unique key are
    kept; a group with one key and conflicting labels is dropped whole; an agreeing group
    keeps one member: the one in the most held-out split, the first such on a tie.
    """
    groups: dict[str, list[int]] = {}
    for i, (key, _, _) in enumerate(items):
        groups.setdefault(key, []).append(i)
    keep: list[int] = []
    for members in groups.values():
        if len(members) == 1:
            keep.append(members[0])
        elif len({items[i][1] for i in members}) == 1:
            keep.append(min(members, key=lambda i: (_SPLIT_RANK[items[i][2]], i)))
    return sorted(keep)


def _file_hash(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def load_utk_dirs(directories: Sequence[str | Path], split: str | None = None) -> UtkData:
    """Every UTKFace chip of ``directories``, de-duplicated by file content
    (:func:`dedup_rule`), then restricted to ``split`` (train/val/test, None for all).

    Malformed names are skipped with a warning (``load_utkface``).
    """
    every = [load_utkface(d) for d in directories]
    paths = [p for d in every for p in d.paths]
    labels = np.concatenate([np.stack([d.age.astype(np.int64), d.gender, d.race], 1)
                             for d in every]) if paths else np.zeros((0, 3), np.int64)
    items = [(_file_hash(p), (int(lab[0]), int(lab[1]), int(lab[2])), utk_split(p.name))
             for p, lab in zip(paths, labels, strict=True)]
    keep = dedup_rule(items)
    dropped = len(paths) - len(keep)
    if dropped:
        log.info("UTKFace: %d chips in %d folders, %d dropped as content duplicates "
                 "(conflicting twins drop both, agreeing twins keep one)",
                 len(paths), len(directories), dropped)
    if split is not None:
        keep = [i for i in keep if items[i][2] == split]
    idx = np.array(keep, np.int64)
    return UtkData([paths[i] for i in keep], labels[idx, 0].astype(np.float32),
                   labels[idx, 1], labels[idx, 2])


def aligned_crops(data: UtkData, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Each chip aligned to the shared template as a uint8 BGR crop (N, size, size, 3), and a
    boolean array: False where the chip could not be read (a corrupt file: skipped with a
    warning, its crop left black, so the caller drops it).

    One YuNet pass serves both the network input (``standardize`` of the crop, exactly what
    ``prepare_face`` computes) and the teachers' input (the same crop, gray). Cached by file
    list and size.
    """
    from audience.core.preprocess import TEMPLATE, align_face

    key = hashlib.sha1(("|".join(str(p) for p in data.paths) + f"|{size}|"
                        + TEMPLATE.tobytes().hex()).encode()).hexdigest()[:16]
    cached = cache_dir() / f"utkcrops_{key}.npz"
    if cached.is_file():
        z = np.load(cached)
        return z["crops"], z["ok"]
    det = chip_detector()
    crops = np.zeros((len(data.paths), size, size, 3), np.uint8)
    ok = np.zeros(len(data.paths), bool)
    misses = 0
    for i, p in enumerate(data.paths):
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            log.warning("skipped an unreadable UTKFace chip: %s", p)
            continue
        marks, found = chip_landmarks(img, det)
        misses += not found
        crops[i] = align_face(img, marks, size, channels=3)
        ok[i] = True
    log.info("aligned %d UTKFace chips (%d without a detection used mean landmarks, "
             "%d unreadable)", len(ok), misses, int((~ok).sum()))
    np.savez(cached, crops=crops, ok=ok)
    return crops, ok


def standardize_batch(crops: np.ndarray) -> np.ndarray:
    """``audience.core.preprocess.standardize`` over a uint8 batch (N, H, W, C), vectorised."""
    from audience.core.preprocess import LUMA_BGR

    x = crops.astype(np.float32)
    luma = x @ LUMA_BGR if x.shape[-1] == 3 else x[..., 0]
    mean = luma.mean(axis=(1, 2))[:, None, None, None]
    std = np.maximum(luma.std(axis=(1, 2)), 1.0)[:, None, None, None]
    return (x - mean) / std


def gray_crops(crops: np.ndarray) -> np.ndarray:
    """BGR uint8 crops (N, H, W, 3) to gray uint8 (N, H, W), as ``cv2.COLOR_BGR2GRAY``."""
    return np.stack([cv2.cvtColor(c, cv2.COLOR_BGR2GRAY) for c in crops]) if len(crops) \
        else np.zeros(crops.shape[:3], np.uint8)
