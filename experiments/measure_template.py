"""Measure the FER-2013 framing: mean YuNet landmarks on Training rows, as crop fractions.

``python experiments/measure_template.py --csv ../shared/datasets/fer2013/fer2013.csv.gz``
prints the array to paste into ``audience.core.preprocess.TEMPLATE``.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from audience.ingest.detect import YuNetDetector
from audience.models.data import load_fer2013

UPSCALE = 4  # YuNet needs faces larger than 48 px


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--csv", required=True)
    parser.add_argument("--n", type=int, default=4000)
    args = parser.parse_args()
    data = load_fer2013(args.csv, splits=("Training",))
    det = YuNetDetector(score_threshold=0.8, work_width=48 * UPSCALE)
    marks = []
    for img in data.images[: args.n]:
        big = cv2.resize(img, (48 * UPSCALE, 48 * UPSCALE), interpolation=cv2.INTER_CUBIC)
        faces = det.detect(big)
        if len(faces) == 1:
            marks.append(faces[0].landmarks / (48 * UPSCALE))
    m = np.median(np.stack(marks), axis=0)
    # symmetrise: FER rows are not mirrored consistently, the template should be
    sym = m.copy()
    sym[[0, 1, 3, 4], 1] = [(m[0, 1] + m[1, 1]) / 2] * 2 + [(m[3, 1] + m[4, 1]) / 2] * 2
    cx = (m[0, 0] + m[1, 0] + m[3, 0] + m[4, 0]) / 4
    for a, b in ((0, 1), (3, 4)):
        half = (m[b, 0] - m[a, 0]) / 2
        sym[a, 0], sym[b, 0] = cx - half, cx + half
    print(f"detected one face in {len(marks)} of {args.n} rows")
    print(np.array2string(sym, precision=4, separator=", "))


if __name__ == "__main__":
    main()
