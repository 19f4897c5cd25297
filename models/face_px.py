"""Faces as a distant camera sees them: shrink a labelled face until its box is N px.

A ceiling camera sees a shopper's face at 12-30 px. To measure what the model can still tell
at that size, each labelled face is resized (area interpolation, as a sensor integrates light)
so that the shorter side of its YuNet face box is ``face_px`` pixels, and its landmarks are
scaled with it. The analyzer then aligns the small face to its input side exactly as the
camera stage aligns a crop from a frame: the warp scales it back up.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from audience.ingest.detect import FaceDetector, chip_detector

#: YuNet's face box side over the eye-to-mouth-corner span, the fallback where no face is
#: found in a chip (the median over UTKFace val chips with a detection is close to 2).
BOX_PER_SPAN = 2.0


def face_box_px(image: np.ndarray, landmarks: np.ndarray, det: FaceDetector) -> float:
    """Shorter side of the face box in ``image``: the detection whose landmarks are the
    given ones (the chip's main face), else an estimate from the landmark spread."""
    marks = np.asarray(landmarks, np.float64).reshape(5, 2)
    faces = det.detect(image)
    if faces:
        best = min(faces, key=lambda f: float(np.abs(f.landmarks - marks).sum()))
        return best.size
    span = float(np.ptp(marks, axis=0).max())
    return max(span * BOX_PER_SPAN, 1.0)


def shrink(image: np.ndarray, landmarks: np.ndarray, box_px: float, face_px: float,
           ) -> tuple[np.ndarray, np.ndarray]:
    """The image resized so that a face box of ``box_px`` becomes ``face_px`` (never enlarged),
    with its landmarks in the new pixels."""
    scale = min(1.0, face_px / max(box_px, 1e-6))
    if scale >= 1.0:
        return image, np.asarray(landmarks, np.float32)
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    scale_xy = np.array([size[0] / w, size[1] / h], np.float32)
    # Pixel centres map as the resize maps them: (x + 0.5) * s - 0.5. At 16 px a plain x * s
    # would misplace the landmarks by almost half a pixel, 3% of the face.
    marks = (np.asarray(landmarks, np.float32).reshape(5, 2) + 0.5) * scale_xy - 0.5
    return small, marks


def shrink_faces(images: Sequence[np.ndarray], landmarks: Sequence[np.ndarray], face_px: float,
                 ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every face of a labelled set at ``face_px`` (see :func:`shrink`)."""
    if face_px <= 0:
        raise ValueError(f"face_px must be positive, got {face_px}")
    det = chip_detector()
    out_images, out_marks = [], []
    for img, lm in zip(images, landmarks, strict=True):
        small, marks = shrink(img, lm, face_box_px(img, lm, det), face_px)
        out_images.append(small)
        out_marks.append(marks)
    return out_images, out_marks


def shrink_whole(images: np.ndarray, face_px: int) -> np.ndarray:
    """Frames that are all face (FER-2013's 48x48): down to ``face_px`` and back up to their
    side, as an upscaling crop would see them."""
    side = images.shape[1]
    if face_px >= side:
        return images
    return np.stack([cv2.resize(cv2.resize(im, (face_px, face_px), interpolation=cv2.INTER_AREA),
                                (side, side), interpolation=cv2.INTER_LINEAR) for im in images])
