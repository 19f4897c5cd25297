"""The Python API: ``analyze`` (one image in, its faces out) and ``analyze_images`` (files, for
`audience analyze`). Both detect with YuNet and label with :class:`FaceAnalyzer`.

    from audience import analyze
    for face in analyze("shop.jpg"):          # a path, or a BGR uint8 array (OpenCV order)
        print(face.box, face.attributes.emotion, face.attributes.age, face.to_dict())

Every face is a :class:`~audience.core.result.FaceResult`; ``to_dict()`` gives the keys
``audience analyze --json`` prints, the same ones everywhere.

Nothing is stored: images, crops and results stay in the caller's memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from audience.core import images
from audience.core.errors import InputError
from audience.core.face import Track
from audience.core.result import KEYS, FaceResult
from audience.inference.aggregate import label_tracks
from audience.inference.analyzer import FaceAnalyzer
from audience.inference.config import AnalyzerConfig, AttributePolicy
from audience.ingest.counting import GenderFn
from audience.ingest.detect import YuNetDetector, chip_landmarks
from audience.ingest.sources import SourceError
from audience.settings import load_settings

log = logging.getLogger(__name__)

__all__ = ["KEYS", "FaceResult", "analyze", "analyze_files", "analyze_images", "find_faces"]
Image = str | Path | np.ndarray


def read_image(path: Path) -> np.ndarray:
    if not path.is_file():
        raise SourceError(f"image {path} not found: check the path")
    # gray, RGBA and 16-bit become 8-bit BGR; a header claiming too many pixels is refused
    # before decoding (ImageTooLargeError, exit 2)
    img = images.read_image(path, cv2.IMREAD_COLOR)
    if img is None:
        raise SourceError(f"cannot decode {path}: not an image format OpenCV reads")
    return img


def as_bgr(image: Image, rgb: bool = False) -> np.ndarray:
    """A path or an array (gray, BGR, BGRA; RGB with ``rgb``) as 8-bit BGR."""
    if isinstance(image, str | Path):
        return read_image(Path(image))
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2]
                                                             not in (3, 4)):
        raise InputError(f"expected an 8-bit gray, BGR or BGRA image array, got dtype "
                         f"{arr.dtype} and shape {arr.shape}")
    if arr.ndim == 2:
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR)
    if arr.shape[2] == 4:
        return cv2.cvtColor(arr, cv2.COLOR_RGBA2BGR if rgb else cv2.COLOR_BGRA2BGR)
    return cv2.cvtColor(arr, cv2.COLOR_RGB2BGR) if rgb else arr


def find_faces(img: np.ndarray, detector: YuNetDetector, analyzer: FaceAnalyzer,
               aligned: bool = False, source: str | None = None) -> list[FaceResult]:
    """Detect the faces of one BGR image and label them in one batch, largest first.

    With ``aligned`` the image is one face crop: it is aligned on its own landmarks where
    YuNet finds them, else taken as already framed.
    """
    h, w = img.shape[:2]
    if aligned:
        marks, found = chip_landmarks(img, detector)
        boxes, scores, landmarks = [[0.0, 0.0, float(w), float(h)]], [1.0], [
            marks if found else None]
    else:
        faces = detector.detect(img)
        boxes = [[round(float(v), 1) for v in f.box] for f in faces]
        scores = [round(f.score, 4) for f in faces]
        landmarks = [f.landmarks for f in faces]
    if not boxes:
        return []
    attrs = analyzer.analyze([img] * len(boxes), landmarks)
    results = sorted((FaceResult(b, s, a, source) for b, s, a in zip(boxes, scores, attrs,
                                                                      strict=True)),
                     key=lambda f: -f.area)
    return [replace(f, face=i) for i, f in enumerate(results)]


@lru_cache(maxsize=4)
def _models(heads: tuple[str, ...]) -> tuple[YuNetDetector, FaceAnalyzer]:
    # Loading both models takes longer than analysing a frame: keep one pair per policy.
    return (YuNetDetector(work_width=1280),
            FaceAnalyzer(AnalyzerConfig(), AttributePolicy.from_names(list(heads))))


def analyze(image: Image, attributes: str | Sequence[str] | None = None, *,
            rgb: bool = False, analyzer: FaceAnalyzer | None = None) -> list[FaceResult]:
    """Detect and label every face in one image.

    ``image``: a file path, or a uint8 array in OpenCV's BGR order (``rgb=True`` for RGB, as
    PIL and matplotlib give). ``attributes``: heads to run, e.g. ``"emotion,age"``; default the
    analyzer's policy (emotion, age, gender; ethnicity is off unless enabled). Returns one
    :class:`FaceResult` per face, largest first: ``box`` [x1, y1, x2, y2] in pixels, ``score``
    (detector confidence) and ``attributes`` (a head that did not run is None);
    ``to_dict()`` gives the keys ``KEYS``. An image without a face gives ``[]``.
    """
    img = as_bgr(image, rgb)
    if analyzer is None:
        names = attributes if isinstance(attributes, str | None) else list(attributes)
        policy = (AttributePolicy.from_names(names) if names is not None
                  else AnalyzerConfig().attributes)
        detector, analyzer = _models(tuple(policy.enabled()))
    else:
        if attributes is not None:
            raise ValueError("pass either attributes or an analyzer (it has its own policy)")
        detector = _models(tuple(analyzer.policy.enabled()))[0]
    return find_faces(img, detector, analyzer,
                      source=str(image) if isinstance(image, str | Path) else None)


def analyze_images(paths: list[Path], aligned: bool = False,
                   config: AnalyzerConfig | None = None,
                   policy: AttributePolicy | None = None) -> Iterator[dict]:
    """One dict per face (keys ``KEYS``; attributes the policy disables are None)."""
    for _, faces in analyze_files(paths, aligned, config, policy):
        yield from (f.to_dict() for f in faces)


def analyze_files(paths: list[Path], aligned: bool = False,
                  config: AnalyzerConfig | None = None,
                  policy: AttributePolicy | None = None,
                  ) -> Iterator[tuple[np.ndarray, list[FaceResult]]]:
    """Per image: (the image, its faces, largest first) for `audience analyze`."""
    analyzer = FaceAnalyzer(config, policy)
    detector = YuNetDetector(work_width=1280)
    for path in paths:
        img = read_image(Path(path))
        faces = find_faces(img, detector, analyzer, aligned, source=str(path))
        if not faces:
            log.warning("no face found in %s", path)
        yield img, faces


def track_genders(config: Path | None = None) -> GenderFn:
    """Tracks -> the gender of the visit each becomes (None without a usable crop), labelled
    as the pipeline labels it (the config's analyzer, gender head only): `audience evaluate
    counting`'s gender agreement."""
    cfg = load_settings(config, {})
    analyzer = FaceAnalyzer(cfg.analyzer, AttributePolicy.from_names("gender"))

    def label(tracks: list[Track]) -> list[str | None]:
        return [v.gender for v in label_tracks(analyzer, tracks, cfg.analyzer.crops_per_visit)]

    return label
