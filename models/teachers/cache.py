"""Teacher outputs, computed once per dataset and cached (``models.data.cache_dir()``).

- FER-2013 (every row): mini-Xception emotion probabilities; AgeGenderNet age and p(female).
  FaceExpressionNet's emotion probabilities have a file of their own (measured, not yet in the
  training recipe), so the first file and its key stay as they were.
- UTKFace chips: mini-Xception emotion only. AgeGenderNet never labels UTKFace chips: it was
  trained on UTKFace, so its outputs there could leak test labels.

``python -m models.teachers.cache`` fills the cache and prints each teacher's check figures.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from audience.models.data import cache_dir

log = logging.getLogger(__name__)

#: Bumped when a teacher's code or package changes, so stale caches are not reused.
CACHE_VERSION = "t1"


def _key(*parts: object) -> str:
    return hashlib.sha1("|".join(map(str, (CACHE_VERSION, *parts))).encode()).hexdigest()[:16]


def _fer_path(prefix: str, csv_path: str | Path, images: np.ndarray, ext: str) -> Path:
    """One cache file per FER-2013 file, row count and (a sample of) pixel content."""
    return cache_dir() / (f"{prefix}_{_key(Path(csv_path).resolve(), len(images))}"
                          f"_{int(images[::97].sum())}.{ext}")


def _cached(path: Path, run: Callable[[], np.ndarray], teacher: str, what: str) -> np.ndarray:
    """One teacher's outputs as float32: from ``path`` if cached, else ``run()`` saved there."""
    if path.is_file():
        return np.load(path)
    out = run().astype(np.float32)
    np.save(path, out)
    log.info("%s labelled %d %s (cached in %s)", teacher, len(out), what, path)
    return out


def blend(first: np.ndarray, second: np.ndarray, share: float) -> np.ndarray:
    """Two teachers' probabilities averaged, ``share`` on the second (the note's ensemble)."""
    return ((1 - share) * first + share * second).astype(np.float32)


def fer_teacher_outputs(csv_path: str | Path, images: np.ndarray) -> dict[str, np.ndarray]:
    """``emotion`` (N, 7), ``age`` (N,), ``p_female`` (N,) for every FER-2013 row given."""
    path = _fer_path("teachers_fer", csv_path, images, "npz")
    if path.is_file():
        return dict(np.load(path))
    from audience.models.teachers.agegender import AgeGenderNet
    from audience.models.teachers.minixception import MiniXception

    emotion = MiniXception()(images)
    age, p_female = AgeGenderNet()(images)
    out = {"emotion": emotion.astype(np.float32), "age": age.astype(np.float32),
           "p_female": p_female.astype(np.float32)}
    np.savez(path, emotion=out["emotion"], age=out["age"], p_female=out["p_female"])
    log.info("teachers labelled %d FER-2013 rows (cached in %s)", len(images), path)
    return out


def fer_expression_outputs(csv_path: str | Path, images: np.ndarray) -> np.ndarray:
    """FaceExpressionNet emotion probabilities (N, 7), FER-2013 order, for every row given."""
    def run() -> np.ndarray:
        from audience.models.teachers.expression import FaceExpressionNet

        return FaceExpressionNet()(images)

    return _cached(_fer_path("teachers_fer_expression", csv_path, images, "npy"), run,
                   "FaceExpressionNet", "FER-2013 rows")


def fer_model_emotion(csv_path: str | Path, images: np.ndarray, manifest: str | Path
                      ) -> np.ndarray:
    """A shipped model's emotion probabilities (N, 7) for every FER-2013 row given, through
    its own analyzer (``--emotion-teacher``: a student distilled from an emotion specialist)."""
    sha = json.loads(Path(manifest).read_text())["sha256"]

    def run() -> np.ndarray:
        from audience.models.evaluate import frame_emotions, load_analyzer

        return frame_emotions(load_analyzer("emotion", weights=manifest), images)

    return _cached(_fer_path(f"teacher_fer_model_{sha[:16]}", csv_path, images, "npy"), run,
                   f"the model of {manifest}", "FER-2013 rows")


def best_blend(first: np.ndarray, second: np.ndarray, labels: np.ndarray,
               usage: np.ndarray) -> tuple[float, float, float]:
    """The weight w on ``first`` in ``w * first + (1 - w) * second`` (0.5 to 1.0 by 0.05) that
    is best on PublicTest, with its PublicTest and PrivateTest accuracy (PrivateTest is only
    reported, never used to choose)."""
    def acc(p: np.ndarray, split: str) -> float:
        keep = usage == split
        return float((p[keep].argmax(1) == labels[keep]).mean())

    weights = [round(0.5 + 0.05 * i, 2) for i in range(11)]
    public = [acc(blend(first, second, 1 - w), "PublicTest") for w in weights]
    w = weights[int(np.argmax(public))]  # the first best: ties go to the smaller weight
    return w, max(public), acc(blend(first, second, 1 - w), "PrivateTest")


def utk_teacher_emotion(gray_crops: np.ndarray, names: list[str]) -> np.ndarray:
    """mini-Xception emotion probabilities (N, 7) for aligned gray UTKFace crops."""
    def run() -> np.ndarray:
        from audience.models.teachers.minixception import MiniXception

        return MiniXception()(gray_crops)

    return _cached(cache_dir() / f"teachers_utk_{_key('|'.join(names), gray_crops.shape)}.npy",
                   run, "mini-Xception", "UTKFace chips")


def main() -> None:
    """Fill the caches for the shared datasets and print the teachers' check figures."""
    import argparse
    import sys

    from audience.models.data import load_fer2013
    from audience.models.teachers import TeacherError
    from audience.models.utk import aligned_crops, gray_crops, load_utk_dirs

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fer-csv", default="../shared/datasets/fer2013/fer2013.csv.gz")
    ap.add_argument("--utk-dir", action="append",
                    default=None, help="UTKFace folder (repeatable)")
    args = ap.parse_args()
    dirs = args.utk_dir or ["../shared/datasets/utkface/crop_part1",
                            "../shared/datasets/utkface/more"]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        fer = load_fer2013(args.fer_csv)
        t = fer_teacher_outputs(args.fer_csv, fer.images)
        expression = fer_expression_outputs(args.fer_csv, fer.images)
        for name, probs in (("mini-Xception", t["emotion"]), ("FaceExpressionNet", expression)):
            for split in ("PublicTest", "PrivateTest"):
                keep = fer.usage == split
                acc = float((probs[keep].argmax(1) == fer.labels[keep]).mean())
                print(f"{name} FER-2013 {split}: {acc:.4f} ({keep.sum()} rows)")
        w, public, private = best_blend(t["emotion"], expression, fer.labels, fer.usage)
        print(f"{w:.2f} x mini-Xception + {1 - w:.2f} x FaceExpressionNet (weight chosen on "
              f"PublicTest): PublicTest {public:.4f}, PrivateTest {private:.4f}")
        print(f"AgeGenderNet on FER-2013: mean age {t['age'].mean():.1f}, "
              f"share female {(t['p_female'] > 0.5).mean():.3f}")
        utk = load_utk_dirs(dirs)
        crops, _ = aligned_crops(utk)
        emo = utk_teacher_emotion(gray_crops(crops), [str(p) for p in utk.paths])
        print(f"mini-Xception on {len(emo)} UTKFace chips: class shares "
              f"{np.round(np.bincount(emo.argmax(1), minlength=7) / len(emo), 3).tolist()}")
    except TeacherError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
