"""Loaders for the public formats users already have: FER-2013 CSV, FER+ votes, UTKFace names.

Malformed rows and file names are skipped and counted in the log; they never crash a run.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from audience.core.errors import InputError, MissingFileError
from audience.ingest.detect import chip_detector, chip_landmarks

log = logging.getLogger(__name__)

#: FER-2013 class order (the ``emotion`` column).
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: UTKFace race codes, in file-name order.
ETHNICITIES = ("white", "black", "asian", "indian", "other")
GENDERS = ("male", "female")
#: The nine age groups in-the-wild benchmarks score (FairFace's): lower bounds inclusive.
AGE_GROUPS9 = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")
_GROUP9_UPPER = np.array([3, 10, 20, 30, 40, 50, 60, 70])


def age_group9(ages: np.ndarray) -> np.ndarray:
    """Index into ``AGE_GROUPS9`` of each age (years, fractional for predictions)."""
    return np.searchsorted(_GROUP9_UPPER, np.asarray(ages, np.float64), side="right")


def age_group9_accuracy(true_ages: np.ndarray, predicted: np.ndarray) -> float:
    """Share of faces whose predicted age falls in the true age's group of nine."""
    return round(float((age_group9(true_ages) == age_group9(predicted)).mean()), 4)
FER_SIDE = 48

# FER+ vote columns, in their file order, mapped to FER-2013 classes (contempt, unknown and
# not-a-face have no FER-2013 class and are dropped).
_FERPLUS_TO_FER = {"neutral": 6, "happiness": 3, "surprise": 5, "sadness": 4, "anger": 0,
                   "disgust": 1, "fear": 2}


def cache_dir() -> Path:
    """Where derived arrays are cached (never inside the repository)."""
    path = Path(os.environ.get("AUDIENCE_CACHE", "~/.cache/audience")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _open_text(path: str | Path) -> io.TextIOBase:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path} does not exist: pass the FER-2013 CSV (plain or .gz)")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


class DatasetError(InputError, ValueError):
    """A dataset file or folder the user named holds nothing usable: one line, exit 2."""


UTK_SPLITS = ("train", "val", "test")


@dataclass
class FerData:
    images: np.ndarray  #: (N, 48, 48) uint8
    labels: np.ndarray  #: (N,) int64 in EMOTIONS order
    usage: np.ndarray  #: (N,) str: Training, PublicTest, PrivateTest
    rows: np.ndarray  #: (N,) index of the data row in the file, to join FER+ votes

    def split(self, name: str) -> FerData:
        keep = self.usage == name
        return FerData(self.images[keep], self.labels[keep], self.usage[keep], self.rows[keep])


def load_fer2013(path: str | Path, splits: Iterable[str] | None = None) -> FerData:
    """Read a FER-2013 CSV (``emotion,pixels,Usage``; plain or gzip)."""
    try:
        return _load_fer2013(path, splits)
    except (UnicodeDecodeError, csv.Error, EOFError, gzip.BadGzipFile) as exc:  # a binary file
        raise DatasetError(f"{path} is not a FER-2013 CSV ({type(exc).__name__}): pass the "
                           "emotion,pixels,Usage CSV (plain or .gz)") from None


def _load_fer2013(path: str | Path, splits: Iterable[str] | None) -> FerData:
    wanted = set(splits) if splits else None
    images, labels, usage, rows = [], [], [], []
    bad = 0
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:3]] != ["emotion", "pixels", "Usage"]:
            raise DatasetError(f"{path}: expected the header 'emotion,pixels,Usage', got "
                               f"{ascii(header)[:80]}: pass the FER-2013 CSV")
        for i, rec in enumerate(reader):
            try:
                emotion, pixels, use = int(rec[0]), rec[1], rec[2].strip()
                if not 0 <= emotion < len(EMOTIONS):
                    raise ValueError("label out of range")
                if wanted is not None and use not in wanted:
                    continue
                img = np.array(pixels.split(), dtype=np.int32)
                if img.size != FER_SIDE * FER_SIDE or img.min() < 0 or img.max() > 255:
                    raise ValueError("wrong pixel count or range")
            except (ValueError, IndexError):
                bad += 1
                continue
            images.append(img.astype(np.uint8).reshape(FER_SIDE, FER_SIDE))
            labels.append(emotion)
            usage.append(use)
            rows.append(i)
    if bad:
        log.warning("%s: skipped %d malformed rows", path, bad)
    log.info("%s: loaded %d rows", path, len(images))
    return FerData(
        np.stack(images) if images else np.zeros((0, FER_SIDE, FER_SIDE), np.uint8),
        np.array(labels, np.int64), np.array(usage), np.array(rows, np.int64))


def load_ferplus(path: str | Path, n_rows: int) -> np.ndarray:
    """FER+ votes as (n_rows, 7) distributions in FER-2013 class order; a row without usable
    votes (or malformed) is all zeros."""
    out = np.zeros((n_rows, len(EMOTIONS)), np.float32)
    bad = 0
    with _open_text(path) as fh:
        reader = csv.DictReader(fh)
        for i, rec in enumerate(reader):
            if i >= n_rows:
                break
            try:
                for col, k in _FERPLUS_TO_FER.items():
                    out[i, k] = float(rec[col])
            except (KeyError, TypeError, ValueError):
                out[i] = 0
                bad += 1
    if bad:
        log.warning("%s: skipped %d malformed vote rows", path, bad)
    total = out.sum(1, keepdims=True)
    return np.divide(out, total, out=np.zeros_like(out), where=total > 0)


@dataclass
class UtkData:
    paths: list[Path]
    age: np.ndarray  #: years
    gender: np.ndarray  #: 0 male, 1 female
    race: np.ndarray  #: ETHNICITIES index

    def subset(self, keep: np.ndarray) -> UtkData:
        return self.take(np.flatnonzero(keep))

    def take(self, idx: np.ndarray) -> UtkData:
        """The chips at these indices, in this order (repeats allowed)."""
        return UtkData([self.paths[i] for i in idx], self.age[idx], self.gender[idx],
                       self.race[idx])


def parse_utk_name(name: str) -> tuple[int, int, int] | None:
    """``{age}_{gender}_{race}_{datetime}.jpg...`` -> (age, gender, race), or None if malformed."""
    parts = name.split("_")
    if len(parts) < 4:
        return None
    try:
        age, gender, race = int(parts[0]), int(parts[1]), int(parts[2])
    except ValueError:
        return None
    if not (0 <= age <= 120 and gender in (0, 1) and 0 <= race < len(ETHNICITIES)):
        return None
    return age, gender, race


def utk_split(name: str) -> str:
    """Fixed split from a hash of the file name: 70% train, 10% val, 20% test.

    Order-independent, so adding files never moves an existing one between splits.
    """
    bucket = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) % 100
    return "train" if bucket < 70 else "val" if bucket < 80 else "test"


def load_utkface(directory: str | Path, split: str | None = None) -> UtkData:
    """List UTKFace images and their labels; ``split`` in train/val/test or None for all."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MissingFileError(f"{directory} is not a directory: pass the UTKFace image folder")
    if split is not None and split not in UTK_SPLITS:
        raise DatasetError(f"unknown UTKFace split {split!r}: use one of "
                           f"{', '.join(UTK_SPLITS)} or all")
    paths, ages, genders, races = [], [], [], []
    bad = 0
    for p in sorted(directory.iterdir()):
        if p.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        labels = parse_utk_name(p.name)
        if labels is None:
            bad += 1
            continue
        if split is not None and utk_split(p.name) != split:
            continue
        paths.append(p)
        ages.append(labels[0])
        genders.append(labels[1])
        races.append(labels[2])
    if bad:
        log.warning("%s: skipped %d files with malformed names", directory, bad)
    return UtkData(paths, np.array(ages, np.float32), np.array(genders, np.int64),
                   np.array(races, np.int64))


def utk_chips(data: UtkData) -> Iterator[tuple[np.ndarray | None, np.ndarray | None, bool]]:
    """Read each chip and find its landmarks, in file order: ``(image, landmarks, found)``.

    The one place chips are read and landmarked, for training and evaluation alike. An
    unreadable file yields ``(None, None, False)``; the caller decides if that is fatal.
    """
    from audience.core.images import ImageTooLargeError, read_image

    det = chip_detector()
    for p in data.paths:
        try:  # the header first: a chip claiming 100000x100000 is not decoded
            img = read_image(p, cv2.IMREAD_COLOR)
        except ImageTooLargeError:
            img = None
        if img is None:
            yield None, None, False
            continue
        marks, found = chip_landmarks(img, det)
        yield img, marks, found


def read_utk_chips(data: UtkData) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every chip of ``data`` and its landmarks (:func:`utk_chips`); an unreadable file is an
    error, for evaluation, where a missing image would change the figures."""
    images: list[np.ndarray] = []
    marks: list[np.ndarray] = []
    for p, (img, lm, _) in zip(data.paths, utk_chips(data), strict=True):
        if img is None or lm is None:
            raise DatasetError(f"cannot read {p}: remove it or replace it with the original chip")
        images.append(img)
        marks.append(lm)
    return images, marks


def aligned_utk_faces(data: UtkData, size: int, channels: int = 1) -> np.ndarray:
    """Align each UTKFace chip to the shared template; (N, size, size, channels) float32.

    Landmarks come from YuNet; where it finds no face the chip's mean landmarks are used
    (UTKFace chips are already roughly aligned). Cached by file list and size.
    """
    from audience.core.preprocess import TEMPLATE, prepare_face

    key = hashlib.sha1(("|".join(p.name for p in data.paths) + f"|{size}|"
                        + TEMPLATE.tobytes().hex()
                        + (f"|c{channels}" if channels != 1 else "")).encode()).hexdigest()[:16]
    cached = cache_dir() / f"utk_{key}.npy"
    if cached.is_file():
        return np.load(cached)
    out = np.zeros((len(data.paths), size, size, channels), np.float32)
    misses = 0
    for i, (img, marks, found) in enumerate(utk_chips(data)):
        misses += not found
        if img is not None:
            out[i] = prepare_face(img, marks, size, channels)
    log.info("aligned %d UTKFace chips (%d without a detection used mean landmarks)",
             len(data.paths), misses)
    np.save(cached, out)
    return out
