"""Compare two models on the validation splits, face by face: is the candidate better?

    python -m audience.models.compare models/weights/audience-mt-1.1.0.json \
        models/weights/audience-mt.json

Both models label FER-2013 PublicTest and the UTKFace ``val`` split through the production path
(FaceAnalyzer + prepare_face), and the ``val`` faces of each in-the-wild folder (AAF, LFW:
``models.wild``) as `audience analyze` finds them: gender, the female share, and a paired
bootstrap of the gender accuracy difference per folder.
Printed: each model's figures, the selection score training picks checkpoints by
(``models.train.val_score``: accuracies minus age MAE in decades), and a paired bootstrap
of the score difference over the images (both models scored on the same resample), with its
95% interval, so a gain within noise is seen as such. Test splits are never
touched here: they are measured after a model is chosen.

``--emotion-from-base`` scores a demographics specialist (``audience train --tasks
age,gender,ethnicity``) as if it served beside the base's emotion, as an ensemble would: the
candidate's emotion is the base's, so the difference is that of the other three heads. It is
how a specialist whose input differs from the base's (another ``--size``) is chosen before any
ensemble of the two exists.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from audience.models.data import load_fer2013, load_utkface, read_utk_chips

FER_CSV = Path("../shared/datasets/fer2013/fer2013.csv.gz")
UTK_DIR = Path("../shared/datasets/utkface/crop_part1")


@dataclass
class Hits:
    """Per image: right or wrong (emotion on FER-2013; gender, ethnicity on UTKFace) and the
    absolute age error in years."""

    emotion: np.ndarray
    gender: np.ndarray
    ethnicity: np.ndarray
    age_error: np.ndarray

    def score(self, fer: np.ndarray | None = None, utk: np.ndarray | None = None) -> float:
        """The selection score, optionally on resampled image indices."""
        f = slice(None) if fer is None else fer
        u = slice(None) if utk is None else utk
        return float(self.emotion[f].mean() + self.gender[u].mean() + self.ethnicity[u].mean()
                     - self.age_error[u].mean() / 10)

    def figures(self) -> dict:
        return {"fer2013_publictest_accuracy": round(float(self.emotion.mean()), 4),
                "utkface_val_gender_accuracy": round(float(self.gender.mean()), 4),
                "utkface_val_ethnicity_accuracy": round(float(self.ethnicity.mean()), 4),
                "utkface_val_age_mae": round(float(self.age_error.mean()), 3),
                "score": round(self.score(), 4)}


def paired_bootstrap(base: Hits, cand: Hits, resamples: int = 2000, seed: int = 0) -> dict:
    """Score difference (candidate - base) over paired resamples of the validation images."""
    rng = np.random.default_rng(seed)
    nf, nu = len(base.emotion), len(base.gender)
    diffs = np.empty(resamples)
    for i in range(resamples):
        fer, utk = rng.integers(0, nf, nf), rng.integers(0, nu, nu)
        diffs[i] = cand.score(fer, utk) - base.score(fer, utk)
    return {"difference": round(cand.score() - base.score(), 4),
            "ci95": [round(float(np.percentile(diffs, 2.5)), 4),
                     round(float(np.percentile(diffs, 97.5)), 4)],
            "p_not_better": round(float(np.mean(diffs <= 0)), 3), "resamples": resamples}


def discordant(base: Hits, cand: Hits) -> dict:
    """Images only one of the two gets right, per head (what McNemar's test counts)."""
    return {head: {"only_base": int((getattr(base, head) & ~getattr(cand, head)).sum()),
                   "only_candidate": int((getattr(cand, head) & ~getattr(base, head)).sum())}
            for head in ("emotion", "gender", "ethnicity")}


def label(weights: str | Path, fer, utk, images, marks) -> tuple[str, Hits]:
    from audience.core.preprocess import prepare_batch
    from audience.inference.analyzer import expected_age
    from audience.models.evaluate import frame_emotions, load_analyzer

    analyzer = load_analyzer("emotion,age,gender,ethnicity", weights=weights)
    emotion = frame_emotions(analyzer, fer.images)
    x = prepare_batch(images, marks, analyzer.size, analyzer.channels)
    out = analyzer.predict(x)
    return analyzer.version, Hits(
        emotion=emotion.argmax(1) == fer.labels,
        gender=(out["gender"][:, 0] >= 0.5) == utk.gender,
        ethnicity=out["ethnicity"].argmax(1) == utk.race,
        age_error=np.abs(expected_age(out["age"]) - utk.age))


def wild_gender(weights: str | Path, directory: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per found ``val`` face of an in-the-wild folder: right or wrong on gender, and the
    predicted gender (1 female)."""
    from audience.models.evaluate import load_analyzer
    from audience.models.wild import found_faces, load_wild

    data = load_wild(directory, "val")
    idx, images, marks = found_faces(data)
    attrs = load_analyzer("gender", weights=weights).analyze(images, marks)
    pred = np.array([a.p_female >= 0.5 for a in attrs], np.int64)
    return pred == data.gender[idx], pred


def compare_wild(base: str | Path, candidate: str | Path, directory: Path,
                 resamples: int = 2000, seed: int = 0) -> dict:
    """Gender on one in-the-wild folder's ``val`` faces, both models on the same faces."""
    (a, pa), (b, pb) = wild_gender(base, directory), wild_gender(candidate, directory)
    truth = np.where(a, pa, 1 - pa)
    rng = np.random.default_rng(seed)
    diffs = np.array([b[r].mean() - a[r].mean() for r in
                      (rng.integers(0, len(a), len(a)) for _ in range(resamples))])
    return {"faces": len(a), "female_share_true": round(float(truth.mean()), 4),
            "base": {"gender_accuracy": round(float(a.mean()), 4),
                     "female_share": round(float(pa.mean()), 4)},
            "candidate": {"gender_accuracy": round(float(b.mean()), 4),
                          "female_share": round(float(pb.mean()), 4)},
            "difference": round(float(b.mean() - a.mean()), 4),
            "ci95": [round(float(np.percentile(diffs, 2.5)), 4),
                     round(float(np.percentile(diffs, 97.5)), 4)]}


def compare(base: str | Path, candidate: str | Path, fer_csv: Path = FER_CSV,
            utk_dir: Path | list[Path] = UTK_DIR, resamples: int = 2000,
            emotion_from_base: bool = False, wild_dirs: list[Path] | None = None) -> dict:
    """``utk_dir``: one folder, or several (combined, de-duplicated: ``models.utk``).
    ``emotion_from_base``: the candidate's emotion is the base's (a demographics specialist)."""
    fer = load_fer2013(fer_csv, splits=("PublicTest",))
    if isinstance(utk_dir, list) and len(utk_dir) > 1:
        from audience.models.utk import load_utk_dirs

        utk = load_utk_dirs(utk_dir, split="val")
    else:
        utk = load_utkface(utk_dir[0] if isinstance(utk_dir, list) else utk_dir, split="val")
    images, marks = read_utk_chips(utk)
    (name_a, a), (name_b, b) = (label(w, fer, utk, images, marks) for w in (base, candidate))
    if emotion_from_base:
        b, name_b = replace(b, emotion=a.emotion), f"{name_b} (emotion: {name_a})"
    return {"base": {"model": name_a, **a.figures()},
            "candidate": {"model": name_b, **b.figures()},
            "paired_bootstrap": paired_bootstrap(a, b, resamples),
            "discordant": discordant(a, b),
            "n": {"fer2013": len(fer.labels), "utkface": len(utk.age)},
            "wild": {Path(d).resolve().name: compare_wild(base, candidate, Path(d), resamples)
                     for d in (wild_dirs or [])}}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m audience.models.compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base", help="manifest of the model in use (models/weights/audience-mt.json)")
    p.add_argument("candidate", help="manifest of the new model (audience export ... --out DIR)")
    p.add_argument("--fer-csv", type=Path, default=FER_CSV, help="FER-2013 CSV (.gz ok)")
    p.add_argument("--utk-dir", type=Path, action="append", default=None,
                   help="UTKFace image folder (default crop_part1); repeat it for the combined "
                   "val split of several folders, de-duplicated")
    p.add_argument("--emotion-from-base", action="store_true",
                   help="the candidate is a demographics specialist: score it with the base's "
                   "emotion, as an ensemble of the two would serve")
    p.add_argument("--wild-dir", type=Path, action="append", default=None,
                   help="an in-the-wild folder (labels.csv + faces/) whose val faces are "
                   "compared too; default AAF and LFW where ../shared has them")
    p.add_argument("--no-wild", action="store_true", help="skip the in-the-wild folders")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    from audience.models.wild import WILD_DIRS

    wild = [] if args.no_wild else args.wild_dir or [d for d in WILD_DIRS.values() if d.is_dir()]
    r = compare(args.base, args.candidate, args.fer_csv, args.utk_dir or [UTK_DIR],
                args.resamples, args.emotion_from_base, wild)
    if args.json:
        print(json.dumps(r))
        return
    for role in ("base", "candidate"):
        m = r[role]
        print(f"{role:9} {m['model']}: FER-2013 PublicTest {m['fer2013_publictest_accuracy']:.1%}, "
              f"UTK val gender {m['utkface_val_gender_accuracy']:.1%}, ethnicity "
              f"{m['utkface_val_ethnicity_accuracy']:.1%}, age MAE {m['utkface_val_age_mae']:.2f}"
              f" -> score {m['score']:.4f}")
    b = r["paired_bootstrap"]
    print(f"score difference {b['difference']:+.4f}, 95% interval [{b['ci95'][0]:+.4f}, "
          f"{b['ci95'][1]:+.4f}] over {b['resamples']} paired resamples; "
          f"P(candidate not better) {b['p_not_better']:.3f}")
    for head, d in r["discordant"].items():
        print(f"  {head}: right only with base {d['only_base']}, only with candidate "
              f"{d['only_candidate']}")
    for name, w in r["wild"].items():
        print(f"{name} val ({w['faces']} faces found, {w['female_share_true']:.1%} female): "
              f"gender {w['base']['gender_accuracy']:.1%} -> "
              f"{w['candidate']['gender_accuracy']:.1%}"
              f" ({w['difference']:+.4f}, 95% interval [{w['ci95'][0]:+.4f}, "
              f"{w['ci95'][1]:+.4f}]); female share {w['base']['female_share']:.1%} -> "
              f"{w['candidate']['female_share']:.1%}")


if __name__ == "__main__":
    main()
