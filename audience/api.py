"""`audience analyze`: detect and analyse the faces in image files."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import cv2

from audience.core import images
from audience.inference.analyzer import FaceAnalyzer
from audience.inference.config import AnalyzerConfig, AttributePolicy
from audience.ingest.detect import YuNetDetector, chip_landmarks
from audience.ingest.sources import SourceError

log = logging.getLogger(__name__)

KEYS = ("source", "face", "box", "emotion", "emotion_scores", "age", "age_bracket", "gender",
        "gender_score", "ethnicity", "ethnicity_scores")


def read_image(path: Path):
    if not path.is_file():
        raise SourceError(f"image {path} not found: check the path")
    # gray, RGBA and 16-bit become 8-bit BGR; a header claiming too many pixels is refused
    # before decoding (ImageTooLargeError, exit 2)
    img = images.read_image(path, cv2.IMREAD_COLOR)
    if img is None:
        raise SourceError(f"cannot decode {path}: not an image format OpenCV reads")
    return img


def analyze_images(paths: list[Path], aligned: bool = False,
                   config: AnalyzerConfig | None = None,
                   policy: AttributePolicy | None = None) -> Iterator[dict]:
    """One dict per face (keys ``KEYS``; attributes the policy disables are None).

    With ``aligned`` each image is one face crop: it is aligned on its own landmarks where
    YuNet finds them, else taken as already framed.
    """
    analyzer = FaceAnalyzer(config, policy)
    detector = YuNetDetector(work_width=1280)
    for path in paths:
        img = read_image(Path(path))
        h, w = img.shape[:2]
        if aligned:
            marks, found = chip_landmarks(img, detector)
            boxes, landmarks = [[0, 0, w, h]], [marks if found else None]
        else:
            faces = detector.detect(img)
            if not faces:
                log.warning("no face found in %s", path)
                continue
            boxes = [[round(float(v), 1) for v in f.box] for f in faces]
            landmarks = [f.landmarks for f in faces]
        for i, (box, attrs) in enumerate(
                zip(boxes, analyzer.analyze([img] * len(boxes), landmarks), strict=True)):
            yield {"source": str(path), "face": i, "box": box, **attrs.to_dict()}
