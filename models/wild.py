"""Labelled faces in the wild, with their hair: AAF (children and teenagers) and LFW (adults).

Both folders hold ``labels.csv`` and ``faces/``: AAF ``file,age,gender,split``, LFW
``file,identity,gender,split`` (no age). Unlike UTKFace's chips, these images show the whole
head and some background, so a face is found the way the camera finds it: YuNet on the whole
image at ``audience analyze``'s settings, the largest face kept, aligned to the shared template.
A face YuNet does not find is counted as not found, never guessed, so every figure says how
many faces the product's own detector found.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from audience.models.data import GENDERS, DatasetError, age_group9_accuracy, cache_dir

log = logging.getLogger(__name__)

WILD_DIRS = {"aaf": Path("../shared/datasets/aaf"), "lfw": Path("../shared/datasets/lfw")}
#: Age bands the gender rule and the card's tables use (years, lower bounds inclusive).
AGE_BANDS = ((0, 3, "0-2"), (3, 7, "3-6"), (7, 13, "7-12"), (13, 20, "13-19"),
             (20, 200, "20+"))


def age_band(age: float) -> str | None:
    if np.isnan(age):
        return None
    return next(name for lo, hi, name in AGE_BANDS if lo <= age < hi)


@dataclass
class WildData:
    name: str  #: folder name (aaf, lfw)
    paths: list[Path]
    gender: np.ndarray  #: 0 male, 1 female
    age: np.ndarray  #: years; NaN where the folder has no age
    split: np.ndarray  #: train / val

    def take(self, idx: np.ndarray) -> WildData:
        return WildData(self.name, [self.paths[i] for i in idx], self.gender[idx],
                        self.age[idx], self.split[idx])


def load_wild(directory: str | Path, split: str | None = None) -> WildData:
    """The faces of an AAF- or LFW-style folder (``labels.csv`` + ``faces/``), one split or all."""
    directory = Path(directory)
    labels = directory / "labels.csv"
    if not labels.is_file():
        raise DatasetError(f"{labels} not found: pass a folder with labels.csv and faces/ "
                           "(../shared/datasets/aaf or ../shared/datasets/lfw)")
    paths, genders, ages, splits = [], [], [], []
    bad = 0
    with labels.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            try:
                gender = GENDERS.index(row["gender"].strip())
                age = float(row["age"]) if row.get("age") not in (None, "") else float("nan")
                name, part = row["file"].strip(), row["split"].strip()
            except (KeyError, ValueError, AttributeError):
                bad += 1
                continue
            if split is not None and part != split:
                continue
            paths.append(directory / "faces" / name)
            genders.append(gender)
            ages.append(age)
            splits.append(part)
    if bad:
        log.warning("%s: skipped %d malformed rows", labels, bad)
    if not paths:
        raise DatasetError(f"no faces for split {split or 'all'} in {labels}: check the split "
                           "name (train or val)")
    return WildData(directory.resolve().name, paths, np.array(genders, np.int64),
                    np.array(ages, np.float32), np.array(splits))


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"cannot read {path}: restore the file")
    return img


def detect_wild(data: WildData) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks (N, 5, 2) of each image's largest face, found as `audience analyze` finds
    faces, and a boolean array: False where no face was found (landmarks left zero).
    Cached by file list."""
    from audience.ingest.detect import YuNetDetector

    key = hashlib.sha1("|".join(str(p) for p in data.paths).encode()).hexdigest()[:16]
    cached = cache_dir() / f"wild_marks_{key}.npz"
    if cached.is_file():
        z = np.load(cached)
        return z["marks"], z["found"]
    detector = YuNetDetector(work_width=1280)  # the analyze path's detector
    marks = np.zeros((len(data.paths), 5, 2), np.float32)
    found = np.zeros(len(data.paths), bool)
    for i, p in enumerate(data.paths):
        faces = detector.detect(_read(p))
        if faces:
            best = max(faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))
            marks[i], found[i] = best.landmarks, True
    log.info("%s: a face found in %d of %d images", data.name, int(found.sum()), len(found))
    np.savez(cached, marks=marks, found=found)
    return marks, found


def found_faces(data: WildData) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """The images in which the camera's detector found a face: their indices in ``data``, the
    images (BGR) and each found face's landmarks, for an analyzer to label."""
    marks, found = detect_wild(data)
    idx = np.flatnonzero(found)
    return idx, [_read(data.paths[i]) for i in idx], [marks[i] for i in idx]


def wild_crops(data: WildData, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Each found face aligned to the shared template as a uint8 BGR crop (N, size, size, 3),
    and the found mask (a face not found leaves a black crop the caller drops)."""
    from audience.core.preprocess import TEMPLATE, align_face

    marks, found = detect_wild(data)
    key = hashlib.sha1(("|".join(str(p) for p in data.paths) + f"|{size}|"
                        + TEMPLATE.tobytes().hex()).encode()).hexdigest()[:16]
    cached = cache_dir() / f"wild_crops_{key}.npy"
    if cached.is_file():
        return np.load(cached), found
    crops = np.zeros((len(data.paths), size, size, 3), np.uint8)
    for i in np.flatnonzero(found):
        crops[i] = align_face(_read(data.paths[i]), marks[i], size, channels=3)
    np.save(cached, crops)
    return crops, found


def gender_by_band(true_gender: np.ndarray, pred_gender: np.ndarray,
                   ages: np.ndarray) -> dict[str, dict]:
    """Gender accuracy per age band of ``ages`` (true or predicted years)."""
    out = {}
    for lo, hi, name in AGE_BANDS:
        sel = (ages >= lo) & (ages < hi)
        if sel.any():
            out[name] = {"n": int(sel.sum()),
                         "gender_accuracy": round(float((pred_gender[sel]
                                                         == true_gender[sel]).mean()), 4)}
    return out


def evaluate_wild(directory: str | Path, split: str = "val",
                  weights: str | Path | None = None, face_px: int | None = None) -> dict:
    """Gender (and age where the folder has it) on one split's faces, found by the product's
    own detector: accuracy, the female share against the truth, accuracy by true and by
    predicted age band (the rule that withholds children's gender is chosen from the latter)."""
    from audience.models.evaluate import load_analyzer

    data = load_wild(directory, split)
    idx, images, lms = found_faces(data)
    analyzer = load_analyzer("age,gender", weights=weights)
    if face_px:  # as a distant camera sees them (models.face_px)
        from audience.models.face_px import shrink_faces

        shrunk, lms = shrink_faces(images, lms, face_px)
        images = list(shrunk)
    attrs = analyzer.analyze(images, lms)
    p_female = np.array([a.p_female for a in attrs], np.float64)
    pred = (p_female >= 0.5).astype(np.int64)
    age_pred = np.array([a.age for a in attrs], np.float64)
    truth, age_true = data.gender[idx], data.age[idx]
    out: dict = {
        "dataset": data.name, "split": split, "model": analyzer.version, "face_px": face_px,
        "n": len(data.paths), "found": len(idx),
        "gender_accuracy": round(float((pred == truth).mean()), 4),
        "female_share_true": round(float(truth.mean()), 4),
        "female_share_predicted": round(float(pred.mean()), 4),
        "gender_by_predicted_age": gender_by_band(truth, pred, age_pred),
    }
    has_age = ~np.isnan(age_true)
    if has_age.any():
        out["age_mae"] = round(float(np.abs(age_pred[has_age] - age_true[has_age]).mean()), 3)
        out["age_group9_accuracy"] = age_group9_accuracy(age_true[has_age], age_pred[has_age])
        out["gender_by_true_age"] = gender_by_band(truth[has_age], pred[has_age],
                                                   age_true[has_age])
    return out
