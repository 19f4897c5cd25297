"""The Python API: ``analyze`` (one image in, its faces out) and ``analyze_images`` (files, for
`audience analyze`). Both detect with YuNet and label with :class:`FaceAnalyzer`.

    from audience import analyze
    for face in analyze("shop.jpg"):          # a path, or a BGR uint8 array (OpenCV order)
        print(face["box"], face["emotion"], face["age"], face["gender"])

Nothing is stored: images, crops and results stay in the caller's memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from audience.core import images
from audience.core.errors import InputError
from audience.core.face import Track
from audience.core.visit import FaceAttributes
from audience.inference.aggregate import label_tracks
from audience.inference.analyzer import FaceAnalyzer
from audience.inference.config import AnalyzerConfig, AttributePolicy
from audience.ingest.counting import GenderFn
from audience.ingest.detect import YuNetDetector, chip_landmarks
from audience.ingest.sources import SourceError
from audience.settings import load_settings

log = logging.getLogger(__name__)

KEYS = ("source", "face", "box", "emotion", "emotion_scores", "age", "age_bracket", "gender",
        "gender_score", "ethnicity", "ethnicity_scores")
# Which result keys each attribute head fills (a disabled head's keys are left out by analyze).
HEAD_KEYS = {"emotion": ("emotion", "emotion_scores"), "age": ("age", "age_bracket"),
             "gender": ("gender", "gender_score"), "ethnicity": ("ethnicity", "ethnicity_scores")}
Image = str | Path | np.ndarray


@dataclass(frozen=True, slots=True)
class Labelled:
    """One face found in an image: where (frame pixels) and what the analyzer says."""

    box: list[float]  #: x1, y1, x2, y2
    score: float  #: detector confidence (1.0 for an --aligned crop)
    attributes: FaceAttributes


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
               aligned: bool = False) -> list[Labelled]:
    """Detect the faces of one BGR image and label them in one batch.

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
    return [Labelled(b, s, a) for b, s, a in zip(boxes, scores, attrs, strict=True)]


@lru_cache(maxsize=4)
def _models(heads: tuple[str, ...]) -> tuple[YuNetDetector, FaceAnalyzer]:
    # Loading both models takes longer than analysing a frame: keep one pair per policy.
    return (YuNetDetector(work_width=1280),
            FaceAnalyzer(AnalyzerConfig(), AttributePolicy.from_names(list(heads))))


def analyze(image: Image, attributes: str | Sequence[str] | None = None, *,
            rgb: bool = False, analyzer: FaceAnalyzer | None = None) -> list[dict]:
    """Detect and label every face in one image.

    ``image``: a file path, or a uint8 array in OpenCV's BGR order (``rgb=True`` for RGB, as
    PIL and matplotlib give). ``attributes``: heads to run, e.g. ``"emotion,age"``; default the
    analyzer's policy (emotion, age, gender; ethnicity is off unless enabled). Returns one dict
    per face, largest first: ``box`` [x1, y1, x2, y2] in pixels, ``score`` (detector
    confidence) and the keys of the enabled heads only (``emotion``, ``emotion_scores``,
    ``age``, ``age_bracket``, ``gender``, ``gender_score``, ``ethnicity``,
    ``ethnicity_scores``). An image without a face gives ``[]``.
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
    enabled = analyzer.policy.enabled()
    keys = [k for head in enabled for k in HEAD_KEYS[head]]
    faces = sorted(find_faces(img, detector, analyzer),
                   key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
    return [{"box": f.box, "score": f.score,
             **{k: v for k, v in f.attributes.to_dict().items() if k in keys}} for f in faces]


def analyze_images(paths: list[Path], aligned: bool = False,
                   config: AnalyzerConfig | None = None,
                   policy: AttributePolicy | None = None) -> Iterator[dict]:
    """One dict per face (keys ``KEYS``; attributes the policy disables are None)."""
    for _, row, _ in analyze_files(paths, aligned, config, policy):
        yield from row


def analyze_files(paths: list[Path], aligned: bool = False,
                  config: AnalyzerConfig | None = None,
                  policy: AttributePolicy | None = None,
                  ) -> Iterator[tuple[np.ndarray, list[dict], list[Labelled]]]:
    """Per image: (the image, one ``KEYS`` dict per face, the faces) for `audience analyze`."""
    analyzer = FaceAnalyzer(config, policy)
    detector = YuNetDetector(work_width=1280)
    for path in paths:
        img = read_image(Path(path))
        faces = find_faces(img, detector, analyzer, aligned)
        if not faces:
            log.warning("no face found in %s", path)
        rows = [{"source": str(path), "face": i, "box": f.box, **f.attributes.to_dict()}
                for i, f in enumerate(faces)]
        yield img, rows, faces


def track_genders(config: Path | None = None) -> GenderFn:
    """Tracks -> the gender of the visit each becomes (None without a usable crop), labelled
    as the pipeline labels it (the config's analyzer, gender head only): `audience evaluate
    counting`'s gender agreement."""
    cfg = load_settings(config, {})
    analyzer = FaceAnalyzer(cfg.analyzer, AttributePolicy.from_names("gender"))

    def label(tracks: list[Track]) -> list[str | None]:
        return [v.gender for v in label_tracks(analyzer, tracks, cfg.analyzer.crops_per_visit)]

    return label
