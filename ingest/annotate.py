"""Drawing what the camera stage sees: face boxes with labels or track ids, exclusion masks and
live counts, on a copy of the frame. Used by `audience analyze --annotate`, `audience run
--annotate` and the live view (``--preview``).

Opt-in only: nothing here runs unless a user asks for an annotated file or the live view, and
the pipeline never stores an image either way. Frames are drawn on copies, never in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from audience.core.errors import InputError
from audience.core.face import Face
from audience.core.result import FaceResult
from audience.core.visit import FaceAttributes

if TYPE_CHECKING:
    from audience.ingest.camera import CameraStage

BOX = (0, 200, 0)  # BGR: a face that is tracked (or analysed)
NO_CROP = (0, 200, 255)  # a face tracked without a usable crop (blurred, turned)
BODY = (200, 120, 0)  # a person found by the person detector
MASK = (60, 60, 220)
TEXT = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def label(attrs: FaceAttributes) -> str:
    """'female 34 happy' from whichever attributes were inferred (ethnicity only if enabled)."""
    parts = [attrs.gender, None if attrs.age is None else f"{attrs.age:.0f}", attrs.emotion,
             attrs.ethnicity]
    return " ".join(p for p in parts if p)


def _scale(img: np.ndarray) -> float:
    return max(0.8, min(img.shape[:2]) / 450)  # text and lines grow with the frame


def draw_box(img: np.ndarray, box: Sequence[float] | np.ndarray, text: str = "",
             colour: tuple[int, int, int] = BOX) -> None:
    """A box with a filled caption above it (below, if it would leave the frame), in place."""
    s = _scale(img)
    x1, y1, x2, y2 = (round(float(v)) for v in box[:4])
    thick = max(1, round(2 * s))
    cv2.rectangle(img, (x1, y1), (x2, y2), colour, thick, cv2.LINE_AA)
    if not text:
        return
    (tw, th), base = cv2.getTextSize(text, FONT, 0.5 * s, 1)
    top = y1 - th - base - 4 if y1 - th - base - 4 >= 0 else y2
    cv2.rectangle(img, (x1, top), (x1 + tw + 4, top + th + base + 4), colour, cv2.FILLED)
    cv2.putText(img, text, (x1 + 2, top + th + 2), FONT, 0.5 * s, TEXT, 1, cv2.LINE_AA)


def draw_masks(img: np.ndarray, masks: Sequence[Sequence[tuple[float, float]]]) -> None:
    """Exclusion masks as translucent filled polygons with an outline, in place."""
    if not masks:
        return
    polys = [np.round(np.asarray(m, np.float32)).astype(np.int32) for m in masks]
    overlay = img.copy()
    cv2.fillPoly(overlay, polys, MASK)
    cv2.addWeighted(overlay, 0.35, img, 0.65, 0, dst=img)
    cv2.polylines(img, polys, True, MASK, max(1, round(2 * _scale(img))), cv2.LINE_AA)


def draw_counts(img: np.ndarray, lines: Sequence[str]) -> None:
    """A dark panel with a few lines of text in the top-left corner, in place."""
    s = _scale(img)
    sizes = [cv2.getTextSize(t, FONT, 0.5 * s, 1) for t in lines]
    step = max((h + b for (_, h), b in sizes), default=0) + 6
    width = max((w for (w, _), _ in sizes), default=0) + 12
    panel = img[0:step * len(lines) + 6, 0:width]
    panel[:] = (panel * 0.35).astype(img.dtype)
    for i, t in enumerate(lines):
        cv2.putText(img, t, (6, step * (i + 1)), FONT, 0.5 * s, TEXT, 1, cv2.LINE_AA)


def annotate_faces(img: np.ndarray, faces: Sequence[FaceResult]) -> np.ndarray:
    """A copy of ``img`` (same size) with each face's box and its labels."""
    out = img.copy()
    for face in faces:
        draw_box(out, face.box, label(face.attributes))
    return out


def annotated_path(out: Path, source: Path, n_images: int) -> Path:
    """Where `analyze --annotate OUT` writes ``source``: OUT itself if it names an image file
    (one input only), else ``OUT/<name>-annotated.png``. Never over the input."""
    if out.suffix.lower() in IMAGE_SUFFIXES:
        if n_images > 1:
            raise InputError(f"--annotate {out} names one file but {n_images} images were "
                             "given: pass a folder")
        target = out
    else:
        target = out / f"{source.stem}-annotated.png"
    if target.resolve() == source.resolve():
        raise InputError(f"--annotate {out} would overwrite the input {source}: choose "
                         "another name")
    return target


def write_image(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise InputError(f"cannot write {path}: check the folder is writable and the suffix "
                         "is an image format (.png, .jpg)")
    return path


def short_id(track_id: str | None) -> str:
    return f"#{track_id[:6]}" if track_id else ""


def annotate_frame(stage: CameraStage, frame: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
    """A copy of a camera frame with masks, tracked faces (track id; orange: no crop) and the
    stage's counts so far."""
    out = frame.copy()
    draw_masks(out, stage.config.exclusion_masks)
    for body in stage.bodies:  # people (the person detector), under their faces
        draw_box(out, body.box, short_id(body.track_id), BODY)
    for face in faces:
        draw_box(out, face.box, short_id(face.track_id), BOX if face.crop is not None
                 else NO_CROP)
    c = stage.counters
    draw_counts(out, [f"{stage.config.store}/{stage.config.id}  frame {c.frames}",
                      f"faces now {len(faces)}  in view {stage.tracker.active}",
                      f"visits ended {c.tracks}  masked {c.masked}  watchers {c.watchers}"])
    return out


class VideoAnnotator:
    """A camera-stage frame observer that writes every analysed frame, annotated, to a video
    file (``.mp4``: MPEG-4 Part 2; ``.avi``: MJPEG). Opened on the first frame, at its size."""

    CODECS = {".mp4": "mp4v", ".avi": "MJPG"}

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in self.CODECS:
            raise InputError(f"--annotate {self.path}: use a .mp4 or .avi file name")
        self.fps = fps
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None

    def __call__(self, stage: CameraStage, frame: np.ndarray, timestamp: float,
                 faces: list[Face]) -> None:
        out = annotate_frame(stage, frame, faces)
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            codec = cv2.VideoWriter.fourcc(*self.CODECS[self.path.suffix.lower()])
            h, w = out.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), codec, self.fps, (w, h))
            if not self._writer.isOpened():
                raise InputError(f"cannot write video {self.path}: check the folder is "
                                 "writable, or use .avi")
        self._writer.write(out)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
