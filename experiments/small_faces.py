"""Small faces, one view and several: what a model keeps of gender and age at N px, and whether
averaging several views of the same small face wins back what the size loses.

Each face of the UTKFace combined val split is shrunk until its YuNet box is N px
(``models.face_px``, as ``audience evaluate utkface --face-px N`` does) and read once; then it
is rendered ``--views`` times more as successive frames of a visitor standing still would show
it (the box 8% larger or smaller, a random sub-pixel phase, sensor noise of 3 grey levels), and
the views' p(female) and ages are averaged, as a visit averages its crops
(``inference.aggregate``). A still face's views differ only by resampling and noise, so this is
the least a track's crops could add; a walking visitor also turns and changes expression.

    python experiments/small_faces.py models/weights/audience-mt.json --px 24 --px 16 --px 14
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

UTK_DIRS = ("../shared/datasets/utkface/crop_part1", "../shared/datasets/utkface/more")


def render(image: np.ndarray, marks: np.ndarray, box_px: float, face_px: float,
           rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """One view of a face at ``face_px``; ``rng`` None is the plain shrink, else a jittered
    frame (scale, sub-pixel phase, noise)."""
    from audience.models.face_px import shrink

    if rng is None:
        return shrink(image, marks, box_px, face_px)
    px = face_px * rng.uniform(0.92, 1.08)
    dx, dy = rng.uniform(0.0, box_px / px, 2)  # up to one small pixel, in source pixels
    moved = cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]),
                           (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REFLECT)
    small, out = shrink(moved, np.asarray(marks, np.float32) + [dx, dy], box_px, px)
    noisy = np.clip(small + rng.normal(0.0, 3.0, small.shape), 0, 255).astype(np.uint8)
    return noisy, out


def measure(weights: Path, sizes: list[int], views: int, seed: int = 0) -> dict:
    from audience.ingest.detect import chip_detector
    from audience.models.data import read_utk_chips
    from audience.models.evaluate import load_analyzer
    from audience.models.face_px import face_box_px
    from audience.models.utk import load_utk_dirs

    data = load_utk_dirs(list(UTK_DIRS), split="val")
    images, marks = read_utk_chips(data)
    analyzer = load_analyzer("age,gender", weights=weights)
    det = chip_detector()
    boxes = [face_box_px(im, lm, det) for im, lm in zip(images, marks, strict=True)]
    rng = np.random.default_rng(seed)

    def read(ims, lms) -> tuple[np.ndarray, np.ndarray]:
        out = analyzer.analyze(ims, lms)
        return np.array([a.p_female for a in out]), np.array([a.age for a in out])

    def score(p_female: np.ndarray, age: np.ndarray) -> dict:
        return {"gender": round(float(((p_female >= 0.5) == data.gender).mean()), 4),
                "age_mae": round(float(np.abs(age - data.age).mean()), 3)}

    result: dict = {"model": analyzer.version, "faces": len(images), "views": views,
                    "full": score(*read(images, marks))}
    for px in sizes:
        reads = [read(*zip(*(render(im, lm, b, px, rng if v else None)
                             for im, lm, b in zip(images, marks, boxes, strict=True)),
                           strict=True))
                 for v in range(views + 1)]
        p = np.stack([r[0] for r in reads])
        a = np.stack([r[1] for r in reads])
        result[str(px)] = {"one_view": score(p[0], a[0]),
                           "averaged": score(p.mean(0), a.mean(0))}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("weights", type=Path, help="model manifest (.json)")
    parser.add_argument("--px", type=int, action="append", required=True,
                        help="face box size to measure (repeat)")
    parser.add_argument("--views", type=int, default=8,
                        help="jittered views averaged per face, besides the plain one")
    args = parser.parse_args()
    print(json.dumps(measure(args.weights, args.px, args.views)))


if __name__ == "__main__":
    main()
