"""Choose the age under which a model's apparent gender is withheld, from faces in the wild.

    python -m audience.models.gender_rule models/weights/audience-mt.json [--write]

Children's faces carry little gender: in the wild a model is near chance on babies and well
short of its adult figure on young children. The product reports such a visitor's gender as
unknown rather than publish a coin toss. The rule is chosen on the ``val`` faces of the
in-the-wild folders (AAF, LFW: ``models.wild``), found as the camera finds them, by the age
the model itself *predicts* (the truth is unknown at the camera): the age bands from the
youngest up whose gender accuracy is under ``--floor`` are withheld, and the rule's age is
the lower bound of the first band kept. ``--write`` stores it in the manifest as
``gender_min_age`` with the figures it was chosen on, which the analyzer applies.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from audience.models.wild import AGE_BANDS, WILD_DIRS, gender_by_band

#: Withhold a band whose gender accuracy in the wild is under this: below 4 in 5 right, a
#: share built on it is mostly the model's bias (a band at 70% turns a true 50/50 into
#: anything from 30/70 to 70/30 depending on the direction of its errors).
DEFAULT_FLOOR = 0.8


def pooled_by_predicted_age(weights: str | Path, dirs: list[Path]) -> dict[str, dict]:
    """Gender accuracy per predicted age band over the ``val`` faces of ``dirs``, pooled."""
    from audience.models.evaluate import load_analyzer
    from audience.models.wild import found_faces, load_wild

    analyzer = load_analyzer("age,gender", weights=weights)  # every band, the rule off
    truth, pred, ages = [], [], []
    for directory in dirs:
        data = load_wild(directory, "val")
        idx, images, marks = found_faces(data)
        attrs = analyzer.analyze(images, marks)
        truth.append(data.gender[idx])
        pred.append(np.array([a.p_female >= 0.5 for a in attrs], np.int64))
        ages.append(np.array([a.age for a in attrs], np.float64))
    return gender_by_band(np.concatenate(truth), np.concatenate(pred), np.concatenate(ages))


def choose_min_age(by_band: dict[str, dict], floor: float = DEFAULT_FLOOR) -> float:
    """The lower bound of the first band, youngest up, whose accuracy reaches ``floor``."""
    for lo, _, name in AGE_BANDS:
        band = by_band.get(name)
        if band is not None and band["gender_accuracy"] >= floor:
            return float(lo)
    return float(AGE_BANDS[-1][0])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m audience.models.gender_rule", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest", type=Path, help="the model's manifest (JSON)")
    p.add_argument("--wild-dir", type=Path, action="append", default=None,
                   help="an in-the-wild folder (labels.csv + faces/); default AAF and LFW")
    p.add_argument("--floor", type=float, default=DEFAULT_FLOOR,
                   help="withhold the bands, youngest up, whose gender accuracy is under this")
    p.add_argument("--write", action="store_true", help="store the rule in the manifest")
    args = p.parse_args(argv)
    dirs = args.wild_dir or [d for d in WILD_DIRS.values() if d.is_dir()]
    by_band = pooled_by_predicted_age(args.manifest, dirs)
    min_age = choose_min_age(by_band, args.floor)
    for name, band in by_band.items():
        print(f"predicted {name:>5}: {band['gender_accuracy']:.1%} of {band['n']} faces")
    print(f"gender withheld under {min_age:g} years (floor {args.floor:.0%})")
    if args.write:
        manifest = json.loads(args.manifest.read_text())
        manifest["gender_min_age"] = min_age
        manifest["gender_rule"] = {"floor": args.floor, "by_predicted_age": by_band,
                                   "faces": [Path(d).resolve().name + " val" for d in dirs]}
        args.manifest.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"written to {args.manifest}")


if __name__ == "__main__":
    main()
