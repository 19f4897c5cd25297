"""Face quality measures: which faces are worth a crop, and which crop of a track is best."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np

from audience.core.face import Face
from audience.core.preprocess import to_gray

# quality_score saturation points: beyond these, more pixels or more edges add little for a
# 48x48 network input.
SIZE_FULL_PX = 96.0
SHARPNESS_HALF = 100.0


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of a crop's gray: low means blurred (motion or focus)."""
    return float(cv2.Laplacian(to_gray(crop), cv2.CV_64F).var())


def yaw(landmarks: np.ndarray) -> float:
    """Head turn from the nose position between the eyes: 0 frontal .. 1 profile.

    The nose tip is projected onto the eye-to-eye line; frontal faces put it half-way, a
    turned head moves it towards (and beyond, in profile) one eye.
    """
    pts = np.asarray(landmarks, np.float64).reshape(5, 2)
    right_eye, left_eye, nose = pts[0], pts[1], pts[2]
    axis = left_eye - right_eye
    norm2 = float(axis @ axis)
    if norm2 < 1e-6:  # eyes on top of each other: treat as profile
        return 1.0
    t = float((nose - right_eye) @ axis) / norm2
    return float(np.clip(abs(t - 0.5) * 2.0, 0.0, 1.0))


class Boxed(Protocol):
    box: np.ndarray


def mask_contours(polygons: Sequence[Sequence[tuple[float, float]]]) -> list[np.ndarray]:
    """Config polygons as contours for :func:`in_masks` (convert once, test every face)."""
    return [np.asarray(poly, np.float32).reshape(-1, 1, 2) for poly in polygons]


def in_masks(face: Boxed, contours: Sequence[np.ndarray]) -> bool:
    """Whether the box centre (a face's or a body's) lies inside (or on the edge of) any
    exclusion polygon."""
    if not contours:
        return False
    x1, y1, x2, y2 = (float(v) for v in face.box)
    centre = ((x1 + x2) / 2.0, (y1 + y2) / 2.0)
    return any(cv2.pointPolygonTest(c, centre, False) >= 0 for c in contours)


def quality_score(face: Face, sharp: float | None = None, turn: float | None = None) -> float:
    """Rank crops of one track, 0..1: bigger, sharper and more frontal is better.

    A product, so that one bad factor sinks the crop (a sharp profile or a blurred frontal
    face both predict poorly). ``sharp``/``turn`` skip recomputing known values.
    """
    if sharp is None:
        sharp = sharpness(face.crop) if face.crop is not None else 0.0
    if turn is None:
        turn = yaw(face.landmarks)
    size_term = min(1.0, face.size / SIZE_FULL_PX)
    sharp_term = sharp / (sharp + SHARPNESS_HALF)
    frontal_term = 1.0 - turn
    return float(np.sqrt(size_term) * sharp_term * frontal_term)
