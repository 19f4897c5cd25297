"""Face detectors behind one small interface; YuNet (OpenCV) is the default plugin."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from ingest.face import Face

# OpenCV 5 warns on every YuNet load that its new graph engine ignores target hints: noise.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

YUNET_FILE = "face_detection_yunet_2023mar.onnx"
YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"


def yunet_path() -> Path:
    """The YuNet weights shipped in ``models/weights`` (Apache-2.0)."""
    return Path(str(resources.files("models") / "weights" / YUNET_FILE))


class FaceDetector(Protocol):
    """What a detector plugin implements: BGR frame in, faces in frame pixels out."""

    def detect(self, frame: np.ndarray) -> list[Face]: ...


class YuNetDetector:
    """``cv2.FaceDetectorYN`` run on a frame downscaled to at most ``work_width`` pixels."""

    def __init__(self, score_threshold: float = 0.7, nms_threshold: float = 0.3,
                 work_width: int = 640, model_path: Path | None = None) -> None:
        path = model_path or yunet_path()
        if not path.is_file():
            raise FileNotFoundError(f"YuNet weights not found at {path}: reinstall the package")
        self.work_width = work_width
        self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold,
                                              nms_threshold, 5000)
        self._size: tuple[int, int] | None = None

    def detect(self, frame: np.ndarray) -> list[Face]:
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        elif frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
        h, w = frame.shape[:2]
        scale = min(1.0, self.work_width / w)
        small = frame if scale == 1.0 else cv2.resize(
            frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
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
