"""How much of an aligned crop the UTKFace chips can fill, per framing.

``python experiments/chip_framing.py`` aligns a sample of chips the way training does
(YuNet landmarks onto ``preprocess.TEMPLATE``), at the shipped framing (zoom 1.0) and at wider
ones (zoom below 1: the template shrunk about the crop's centre, so the crop shows what is
around the face), and prints the share of each crop that falls outside the 200x200 chip. The
warp fills that share by repeating the chip's edge: a network trained on such crops learns
nothing about hair or shoulders there, and meets real pixels at the camera instead.

Measured for the last lever tried on the demographic heads (a wider crop, "so it sees the
hair"): experiments/demographics.md quotes the table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from audience.core.errors import AudienceError

DEFAULT_DIRS = ("../shared/datasets/utkface/crop_part1", "../shared/datasets/utkface/more")
ZOOMS = (1.0, 0.85, 0.75, 2 / 3)


def framed(zoom: float) -> np.ndarray:
    """``TEMPLATE`` shrunk by ``zoom`` about the crop's centre (1.0: the shipped framing)."""
    from audience.core.preprocess import TEMPLATE

    return (0.5 + (TEMPLATE - 0.5) * zoom).astype(np.float32)


def outside(chip_shape: tuple[int, int], landmarks: np.ndarray, zoom: float,
            side: int = 96) -> tuple[float, float, float]:
    """Share of a ``side`` x ``side`` crop at ``zoom`` that lies outside the chip: in all, in
    its top eighth (forehead and hair) and in its left and right eighths."""
    from audience.core.preprocess import similarity_transform

    matrix = similarity_transform(landmarks, framed(zoom) * side)
    inside = cv2.warpAffine(np.ones(chip_shape, np.uint8), matrix, (side, side),
                            flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=0).astype(np.float32)
    band = side // 8
    sides = (inside[:, :band].mean() + inside[:, -band:].mean()) / 2
    return 1 - float(inside.mean()), 1 - float(inside[:band].mean()), 1 - float(sides)


def measure(dirs: list[Path], n: int, seed: int = 0) -> dict[float, np.ndarray]:
    """(n, 3) outside shares per zoom, for ``n`` chips drawn with ``seed`` from ``dirs``."""
    from tqdm import tqdm

    from audience.models.data import utk_chips
    from audience.models.utk import load_utk_dirs

    data = load_utk_dirs(dirs)
    pick = np.random.default_rng(seed).choice(len(data.paths), min(n, len(data.paths)),
                                              replace=False)
    sample = data.take(np.sort(pick))
    shares: dict[float, list[tuple[float, float, float]]] = {z: [] for z in ZOOMS}
    for img, marks, _ in tqdm(utk_chips(sample), total=len(sample.paths), desc="chips",
                              unit="chip"):
        if img is None or marks is None:  # an unreadable chip
            continue
        for z in ZOOMS:
            shares[z].append(outside(img.shape[:2], marks, z))
    return {z: np.array(v) for z, v in shares.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utk-dir", action="append", type=Path,
                    help="UTKFace folder (repeatable; default crop_part1 and more)")
    ap.add_argument("--n", type=int, default=1000, help="chips to sample (default 1000)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    try:  # a missing or empty folder: the loader's one line, and its exit code
        result = measure(args.utk_dir or [Path(d) for d in DEFAULT_DIRS], args.n, args.seed)
    except AudienceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    n = len(next(iter(result.values())))
    print(f"share of the aligned crop outside the chip ({n} chips):\n")
    print("| zoom | eye distance, share of the side | whole crop | top eighth | side eighths |")
    print("|---|---|---|---|---|")
    width = float(np.ptp(framed(1.0)[:2, 0]))
    for z, s in result.items():
        print(f"| {z:.3f} | {width * z:.2f} | {100 * s[:, 0].mean():.1f}% "
              f"| {100 * s[:, 1].mean():.0f}% | {100 * s[:, 2].mean():.0f}% |")


if __name__ == "__main__":
    main()
