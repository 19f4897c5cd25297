"""The one preprocessing function shared by training, evaluation and the camera path.

Every face that reaches the network goes through :func:`prepare_face`: FER-2013 rows at
training time, UTKFace chips at training and evaluation time, and YuNet-aligned camera
crops in production. Training and serving therefore cannot drift apart.

Framing: the network sees faces framed the way FER-2013 frames them (the dataset with the
most labels). ``TEMPLATE`` holds the mean YuNet landmarks measured on FER-2013 images
(``python experiments/measure_template.py``), as fractions of the crop side. A face with
landmarks is warped onto that template with a similarity transform; a face without
landmarks is taken as already framed (a FER-2013 row, an ``--aligned`` crop).
"""

from __future__ import annotations

import cv2
import numpy as np

#: Side of the square network input, in pixels.
INPUT_SIZE = 48

#: Luma weights in OpenCV's BGR order (``cv2.COLOR_BGR2GRAY``). A colour input is standardised
#: with its luma's mean and spread, so ``x @ LUMA_BGR`` of a prepared colour face is the prepared
#: gray face: a gray model's first layer carries over to colour exactly (``models.warmstart``).
LUMA_BGR = np.array([0.114, 0.587, 0.299], np.float32)

#: Mean five-point YuNet landmarks on FER-2013 (right eye, left eye, nose tip, right and left
#: mouth corner, in image coordinates), as fractions of the crop side.
#: Measured by ``python experiments/measure_template.py`` on 4,000 Training rows (3,844 had
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


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Return an HxWx3 uint8 BGR image from a gray, BGR or BGRA image (gray is replicated)."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    raise ValueError(f"unsupported image shape {image.shape}: expected HxW, HxWx1, HxWx3 or HxWx4")


def _convert(image: np.ndarray, channels: int) -> np.ndarray:
    if channels == 1:
        return to_gray(image)
    if channels == 3:
        return to_bgr(image)
    raise ValueError(f"channels must be 1 (gray) or 3 (BGR), got {channels}")


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


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = INPUT_SIZE,
               channels: int = 1) -> np.ndarray:
    """Warp a face onto ``TEMPLATE`` using its five landmarks; returns a size x size uint8
    crop, gray (``channels=1``) or BGR (``channels=3``)."""
    src = _convert(image, channels)
    big = size * _OVERSAMPLE
    matrix = similarity_transform(np.asarray(landmarks, np.float32).reshape(5, 2), TEMPLATE * big)
    warped = cv2.warpAffine(src, matrix, (big, big), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(warped, (size, size), interpolation=cv2.INTER_AREA)


def standardize(face: np.ndarray) -> np.ndarray:
    """Per-image zero mean, unit variance of the luma: removes global lighting and contrast
    differences. A BGR face keeps its colour: every channel is shifted and scaled alike."""
    x = face.astype(np.float32)
    luma = x @ LUMA_BGR if x.ndim == 3 else x
    std = float(luma.std())
    return (x - float(luma.mean())) / max(std, 1.0)


def prepare_face(
    image: np.ndarray, landmarks: np.ndarray | None = None, size: int = INPUT_SIZE,
    channels: int = 1,
) -> np.ndarray:
    """Turn one face image into the network input: float32 array of shape (size, size, channels).

    ``image`` is uint8 gray, BGR or BGRA. With ``landmarks`` (5x2, YuNet order, pixel
    coordinates of ``image``) the face is aligned to ``TEMPLATE``; without, ``image`` is
    taken as an already framed face crop and only resized. ``channels`` is the model's: 1
    (gray) or 3 (BGR; a gray image is replicated, so gray data feeds a colour model as is).
    """
    if landmarks is not None:
        face = align_face(image, landmarks, size, channels)
    else:
        face = _convert(image, channels)
        if face.shape[:2] != (size, size):
            interp = cv2.INTER_AREA if min(face.shape[:2]) >= size else cv2.INTER_LINEAR
            face = cv2.resize(face, (size, size), interpolation=interp)
    x = standardize(face)
    return x[:, :, None] if x.ndim == 2 else x


def prepare_batch(
    images: list[np.ndarray], landmarks: list[np.ndarray | None] | None = None,
    size: int = INPUT_SIZE, channels: int = 1,
) -> np.ndarray:
    """:func:`prepare_face` over a list; returns (N, size, size, channels) float32."""
    marks = landmarks if landmarks is not None else [None] * len(images)
    if len(images) == 0:
        return np.zeros((0, size, size, channels), np.float32)
    return np.stack([prepare_face(img, lm, size, channels)
                     for img, lm in zip(images, marks, strict=True)])


def to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """Convert prepared faces (N, H, W, C) to ``channels``: gray replicated to 3, or colour
    reduced to its luma (exactly the prepared gray face, up to the rounding of uint8 gray)."""
    if x.shape[-1] == channels:
        return x
    if channels == 3 and x.shape[-1] == 1:
        return np.repeat(x, 3, axis=-1)
    if channels == 1 and x.shape[-1] == 3:
        return (x @ LUMA_BGR)[..., None].astype(np.float32)
    raise ValueError(f"cannot convert {x.shape[-1]}-channel faces to {channels} channels")
