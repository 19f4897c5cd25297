"""Face detectors behind one small interface; YuNet (OpenCV) is the default plugin."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from audience.core.errors import MissingFileError
from audience.core.face import Face
from audience.core.weights import verified

# OpenCV 5 warns on every YuNet load that its new graph engine ignores target hints: noise.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

YUNET_FILE = "face_detection_yunet_2023mar.onnx"
YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"


def yunet_path() -> Path:
    """The YuNet weights shipped in ``models/weights`` (Apache-2.0)."""
    return Path(str(resources.files("audience.models") / "weights" / YUNET_FILE))


class FaceDetector(Protocol):
    """What a detector plugin implements: BGR frame in, faces in frame pixels out."""

    def detect(self, frame: np.ndarray) -> list[Face]: ...


def work_scale(frame_width: int, work_width: int, max_upscale: float = 1.0) -> float:
    """The factor a frame is resized by before detection: down to ``work_width`` (speed), or
    up towards it by at most ``max_upscale`` (YuNet misses faces under ~12 px, so a small
    frame's small faces are enlarged to reach that floor)."""
    return min(max_upscale, work_width / frame_width)


class YuNetDetector:
    """``cv2.FaceDetectorYN`` run on a frame resized to ``work_width`` pixels: downscaled when
    wider, upscaled (at most ``max_upscale`` times, default never) when narrower."""

    def __init__(self, score_threshold: float = 0.7, nms_threshold: float = 0.3,
                 work_width: int = 640, model_path: Path | None = None,
                 max_upscale: float = 1.0) -> None:
        # The shipped weights are checked like the attribute model's; a caller's own file is
        # the caller's to vouch for.
        path = model_path or verified(yunet_path(), YUNET_SHA256, "YuNet weights")
        if not path.is_file():
            raise MissingFileError(f"YuNet weights not found at {path}: pass an existing file")
        self.work_width = work_width
        self.max_upscale = max_upscale
        self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold,
                                              nms_threshold, 5000)
        self._size: tuple[int, int] | None = None

    def detect(self, frame: np.ndarray) -> list[Face]:
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        elif frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
        h, w = frame.shape[:2]
        scale = work_scale(w, self.work_width, self.max_upscale)
        small = frame if scale == 1.0 else cv2.resize(
            frame, (round(w * scale), round(h * scale)),
            interpolation=cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR)
        size = (small.shape[1], small.shape[0])
        if size != self._size:
            self._net.setInputSize(size)
            self._size = size
        _, rows = self._net.detect(small)
        if rows is None:
            return []
        faces = []
        for row in rows:
            x, y, bw, bh = row[:4] / scale
            faces.append(Face(
                box=np.array([x, y, x + bw, y + bh], np.float32),
                landmarks=(row[4:14].reshape(5, 2) / scale).astype(np.float32),
                score=float(row[14]),
            ))
        return faces


# Mean YuNet landmarks of a 200x200 UTKFace chip: the fallback where YuNet finds no face
# (chips are already roughly aligned, so this is close).
UTK_MEAN_MARKS = np.array([[68, 86], [132, 86], [100, 122], [74, 150], [126, 150]], np.float32)


def chip_detector() -> YuNetDetector:
    return YuNetDetector(score_threshold=0.5, work_width=400)


def chip_landmarks(img: np.ndarray, det: FaceDetector) -> tuple[np.ndarray, bool]:
    """Landmarks of the main face in a face chip: the largest confident YuNet face, else the
    UTKFace mean (scaled to the chip). Returns (landmarks, found)."""
    faces = det.detect(img)
    if faces:
        best = max(faces, key=lambda f: f.score * f.size)
        return best.landmarks, True
    return UTK_MEAN_MARKS * (img.shape[1] / 200.0), False
