"""Person (body) detectors behind one small interface; MoveNet MultiPose Lightning
(Google, Apache-2.0, converted by ``make movenet``) is the default plugin.

A body detector finds the people a face detector cannot: backs to the camera, heads turned
to a shelf, faces too small. Its 17 COCO keypoints also say where a head is (to attach a
face to its body) and which way it is turned (attention, where the face is too small).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from audience.core.errors import MissingFileError
from audience.core.weights import verified

MOVENET_FILE = "movenet_multipose_lightning.onnx"
MOVENET_SHA256 = "9cc98998823b105eb8ce7209b272e5502b11f9a600a469eb27bc9d14a9748200"

#: COCO keypoint order, as MoveNet reports them.
KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
             "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
             "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR, LEFT_SHOULDER, RIGHT_SHOULDER = range(7)
HEAD = (NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR)


def movenet_path() -> Path:
    """The MoveNet MultiPose weights shipped in ``models/weights`` (Apache-2.0)."""
    return Path(str(resources.files("audience.models") / "weights" / MOVENET_FILE))


@dataclass(slots=True)
class Body:
    """One detected person in one frame (no image data)."""

    box: np.ndarray  #: x1, y1, x2, y2 in frame pixels, float32
    keypoints: np.ndarray  #: 17 x 3: x, y in frame pixels, score 0..1 (COCO order)
    score: float  #: detector confidence 0..1
    timestamp: float = 0.0  #: seconds since the epoch of the frame it came from
    track_id: str | None = None
    frontal: bool = False  #: facing the camera in this frame (attention)
    crop: np.ndarray | None = None  #: always None: a body carries no image data

    @property
    def size(self) -> float:
        """Shorter side of the box in pixels."""
        return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    def __repr__(self) -> str:
        return f"Body(box={np.round(self.box, 1).tolist()}, score={self.score:.2f})"


class BodyDetector(Protocol):
    """What a body detector plugin implements: BGR frame in, people in frame pixels out."""

    def detect(self, frame: np.ndarray) -> list[Body]: ...


def input_size(width: int, height: int, long_side: int) -> tuple[float, int, int]:
    """(scale, padded width, padded height): the frame is resized so its long side is
    ``long_side``, then padded (bottom, right) to multiples of 32, as MoveNet requires."""
    scale = long_side / max(width, height)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    return scale, -(-w // 32) * 32, -(-h // 32) * 32


class MoveNetDetector:
    """MoveNet MultiPose Lightning in ONNX Runtime, one thread (one camera per core).

    Input: the frame resized to ``long_side`` on its long side (256: ~55 frames/s of 720p
    on one core; 384 finds a little more at half the speed) and padded to multiples of 32.
    Output: up to 6 people, each a box and 17 keypoints; those under ``score_threshold``
    are dropped.
    """

    def __init__(self, score_threshold: float = 0.3, long_side: int = 256,
                 model_path: Path | None = None) -> None:
        import onnxruntime as ort

        path = model_path or verified(movenet_path(), MOVENET_SHA256, "MoveNet weights")
        if not path.is_file():
            raise MissingFileError(f"MoveNet weights not found at {path}: pass an existing file")
        if long_side % 32:
            raise ValueError(f"long_side {long_side} must be a multiple of 32")
        self.score_threshold = score_threshold
        self.long_side = long_side
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def raw(self, frame: np.ndarray) -> tuple[np.ndarray, float, int, int]:
        """The network's 6 x 56 output for a BGR frame, and the (scale, padded w, h) used."""
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        elif frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
        h, w = frame.shape[:2]
        scale, pw, ph = input_size(w, h, self.long_side)
        small = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        canvas = np.zeros((1, ph, pw, 3), np.int32)
        canvas[0, :small.shape[0], :small.shape[1]] = small[:, :, ::-1]  # BGR -> RGB
        out = self._session.run(None, {self._input: canvas})[0]
        return np.asarray(out[0], np.float32), scale, pw, ph

    def detect(self, frame: np.ndarray) -> list[Body]:
        rows, scale, pw, ph = self.raw(frame)
        bodies = []
        for row in rows:
            score = float(row[55])
            if score < self.score_threshold:
                continue
            kp = row[:51].reshape(17, 3)  # y, x, score, normalised to the padded input
            keypoints = np.stack([kp[:, 1] * pw / scale, kp[:, 0] * ph / scale, kp[:, 2]], 1)
            ymin, xmin, ymax, xmax = row[51:55]
            box = np.array([xmin * pw, ymin * ph, xmax * pw, ymax * ph], np.float32) / scale
            bodies.append(Body(box=box, keypoints=keypoints.astype(np.float32), score=score))
        return bodies
