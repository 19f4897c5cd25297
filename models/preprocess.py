"""The one preprocessing function shared by training, evaluation and the camera path.

Every face that reaches the network goes through :func:`prepare_face`: FER-2013 rows at
training time, UTKFace chips at training and evaluation time, and YuNet-aligned camera
crops in production. Training and serving therefore cannot drift apart.

Framing: the network sees faces framed the way FER-2013 frames them (the dataset with the
most labels). ``TEMPLATE`` holds the mean YuNet landmarks measured on FER-2013 images
(``python -m models.measure_template``), as fractions of the crop side. A face with
landmarks is warped onto that template with a similarity transform; a face without
landmarks is taken as already framed (a FER-2013 row, an ``--aligned`` crop).
"""

from __future__ import annotations

import cv2
import numpy as np

#: Side of the square network input, in pixels.
INPUT_SIZE = 48

#: Mean five-point YuNet landmarks on FER-2013 (right eye, left eye, nose tip, right and left
#: mouth corner, in image coordinates), as fractions of the crop side.
#: Measured by ``python -m models.measure_template`` on 4,000 Training rows (3,844 had
#: exactly one face); eye and mouth pairs symmetrised.
TEMPLATE = np.array(
    [
        [0.3045, 0.3806],
        [0.6848, 0.3806],
        [0.4916, 0.5927],
        [0.3443, 0.7545],
        [0.6450, 0.7545],
    ],
    dtype=np.float32,
)

# Warp at a larger size first, then area-resize: a face of 200 px shrunk straight to 48 px
# by bilinear warping aliases badly.
_OVERSAMPLE = 4


def to_gray(image: np.ndarray) -> np.ndarray:
    """Return a 2-D uint8 grayscale view of a gray, BGR or BGRA image (OpenCV order)."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"unsupported image shape {image.shape}: expected HxW, HxWx1, HxWx3 or HxWx4")


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) mapping src points to dst.

    Umeyama's closed form; returns a 2x3 matrix for ``cv2.warpAffine``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    sign = np.diag([1.0, d])
    rot = u @ sign @ vt
    var = (src_c**2).sum() / len(src)
    scale = np.trace(np.diag(s) @ sign) / var
    shift = dst_mean - scale * rot @ src_mean
    return np.hstack([scale * rot, shift[:, None]]).astype(np.float32)


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """Warp a face onto ``TEMPLATE`` using its five landmarks; returns size x size uint8 gray."""
    gray = to_gray(image)
    big = size * _OVERSAMPLE
    matrix = similarity_transform(np.asarray(landmarks, np.float32).reshape(5, 2), TEMPLATE * big)
    warped = cv2.warpAffine(gray, matrix, (big, big), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(warped, (size, size), interpolation=cv2.INTER_AREA)


def standardize(gray: np.ndarray) -> np.ndarray:
    """Per-image zero mean, unit variance: removes global lighting and contrast differences."""
    x = gray.astype(np.float32)
    std = float(x.std())
    return (x - float(x.mean())) / max(std, 1.0)


def prepare_face(
    image: np.ndarray, landmarks: np.ndarray | None = None, size: int = INPUT_SIZE
) -> np.ndarray:
    """Turn one face image into the network input: float32 array of shape (size, size, 1).

    ``image`` is uint8 gray, BGR or BGRA. With ``landmarks`` (5x2, YuNet order, pixel
    coordinates of ``image``) the face is aligned to ``TEMPLATE``; without, ``image`` is
    taken as an already framed face crop and only resized.
    """
    if landmarks is not None:
        face = align_face(image, landmarks, size)
    else:
        gray = to_gray(image)
        if gray.shape != (size, size):
            interp = cv2.INTER_AREA if min(gray.shape) >= size else cv2.INTER_LINEAR
            gray = cv2.resize(gray, (size, size), interpolation=interp)
        face = gray
    return standardize(face)[:, :, None]


def prepare_batch(
    images: list[np.ndarray], landmarks: list[np.ndarray | None] | None = None,
    size: int = INPUT_SIZE,
) -> np.ndarray:
    """:func:`prepare_face` over a list; returns (N, size, size, 1) float32."""
    marks = landmarks if landmarks is not None else [None] * len(images)
    if len(images) == 0:
        return np.zeros((0, size, size, 1), np.float32)
    return np.stack([prepare_face(img, lm, size) for img, lm in zip(images, marks, strict=True)])
