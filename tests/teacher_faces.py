"""A few real faces for the teacher tests: YuNet-aligned crops from the bundled clip (the
datasets themselves are never committed)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

CLIP = (Path(__file__).resolve().parent.parent / "ingest" / "assets"
        / "face-demographics-walking-and-pause.gif")
REFERENCE = Path(__file__).resolve().parent / "data" / "teachers_reference.npz"
FRAMES = (10, 30)


def clip_faces(size: int = 48) -> np.ndarray:
    """Aligned BGR uint8 crops (N, size, size, 3) of every face YuNet finds in ``FRAMES``,
    left to right per frame."""
    from audience.core.preprocess import align_face
    from audience.ingest.detect import YuNetDetector

    det = YuNetDetector(score_threshold=0.7, work_width=640)
    cap = cv2.VideoCapture(str(CLIP))
    crops, i = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        i += 1
        if i in FRAMES:
            faces = sorted(det.detect(frame), key=lambda f: f.landmarks[:, 0].mean())
            crops += [align_face(frame, f.landmarks, size, channels=3) for f in faces]
    return np.stack(crops)


def teacher_outputs(crops: np.ndarray) -> dict[str, np.ndarray]:
    """Every teacher on the crops, as the training cache calls them (gray), and the face-api.js
    nets on the BGR crops too."""
    from audience.models.teachers.agegender import AgeGenderNet
    from audience.models.teachers.expression import FaceExpressionNet
    from audience.models.teachers.minixception import MiniXception
    from audience.models.utk import gray_crops

    age, p_female = AgeGenderNet()(gray_crops(crops))
    expression = FaceExpressionNet()
    return {"emotion": MiniXception()(gray_crops(crops)), "age": age, "p_female": p_female,
            "age_bgr": AgeGenderNet()(crops)[0], "expression": expression(gray_crops(crops)),
            "expression_bgr": expression(crops)}


if __name__ == "__main__":  # refresh the reference: python -m tests.teacher_faces
    out = teacher_outputs(clip_faces())
    np.savez(REFERENCE, **out)
    print({k: np.round(v, 3).tolist() for k, v in out.items()})
