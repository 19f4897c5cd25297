"""Shrinking a labelled face to N px, as a distant camera sees it (models.face_px)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from audience.ingest.detect import YuNetDetector, chip_detector, chip_landmarks
from audience.models.face_px import face_box_px, shrink, shrink_faces, shrink_whole

ASSETS = Path(__file__).resolve().parents[1] / "ingest" / "assets"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def _face() -> np.ndarray:
    """The largest face of the bundled clip's first frame with a margin (a chip)."""
    cap = cv2.VideoCapture(str(ASSETS / "face-demographics-walking-and-pause.gif"))
    ok, frame = cap.read()
    assert ok
    best = max(YuNetDetector(0.6, 0.3, 960, max_upscale=2.0).detect(frame), key=lambda f: f.size)
    x1, y1, x2, y2 = best.box.astype(int)
    m = (x2 - x1) // 2
    chip = frame[max(0, y1 - m):y2 + m, max(0, x1 - m):x2 + m]
    return cv2.resize(chip, (200, 200 * chip.shape[0] // chip.shape[1]))


@pytest.mark.parametrize("px", [12, 16, 24, 32])
def test_shrink_scales_the_box_and_the_landmarks(px):
    img = _face()
    det = chip_detector()
    marks, found = chip_landmarks(img, det)
    assert found
    box = face_box_px(img, marks, det)
    small, small_marks = shrink(img, marks, box, px)
    scale = px / box
    assert small.shape[1] == round(img.shape[1] * scale)
    # landmarks follow the pixels: pixel centres map as the resize maps them
    assert np.allclose(small_marks, (marks + 0.5) * small.shape[1] / img.shape[1] - 0.5,
                       atol=0.05 * px)
    # the box the detector drew shrinks with the image
    assert box * small.shape[1] / img.shape[1] == pytest.approx(px, rel=0.05)


def test_shrink_never_enlarges_and_rejects_nonsense():
    img = _face()
    marks, _ = chip_landmarks(img, chip_detector())
    same, same_marks = shrink(img, marks, 50.0, 80.0)
    assert same is img and np.allclose(same_marks, marks)
    with pytest.raises(ValueError, match="positive"):
        shrink_faces([img], [marks], 0)


def test_shrink_whole_frames_keeps_their_side():
    frames = np.random.default_rng(0).integers(0, 255, (3, 48, 48), dtype=np.uint8)
    out = shrink_whole(frames, 16)
    assert out.shape == frames.shape and out.dtype == np.uint8
    # detail above 16 px is gone: a smoother image
    assert np.abs(np.diff(out.astype(int), axis=2)).mean() < np.abs(
        np.diff(frames.astype(int), axis=2)).mean() / 2
    assert shrink_whole(frames, 48) is frames
