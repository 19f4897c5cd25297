"""Image files and buffers read safely: the header's size is checked before any decoding.

A 20000x20000 PNG is a few kilobytes on disk and 1.2 GB once decoded; a header may claim
100000x100000 and make OpenCV raise. Pillow reads only the header (``Image.open`` is lazy),
so an image is refused by its claimed size for the price of reading a few bytes.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np

from audience.core.errors import InputError

#: The most pixels an image may claim: 8K UHD (33 MP) passes, 20000x20000 (400 MP) does not.
MAX_PIXELS = 40_000_000


class ImageTooLargeError(InputError):
    """An image whose header claims more than MAX_PIXELS pixels; it was not decoded."""


def header_size(source: bytes | str | Path) -> tuple[int, int] | None:
    """(width, height) from the image header, or None if Pillow does not know the format."""
    from PIL import Image, UnidentifiedImageError

    try:
        fh = io.BytesIO(source) if isinstance(source, bytes) else source
        with Image.open(fh) as img:
            return int(img.size[0]), int(img.size[1])
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def check_size(size: tuple[int, int] | None, what: str, max_pixels: int = MAX_PIXELS) -> None:
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageTooLargeError(
            f"{what} claims {size[0]}x{size[1]} pixels, more than the {max_pixels:,} this "
            "tool decodes: scale it down first")


def read_image(path: str | Path, flags: int = cv2.IMREAD_UNCHANGED,
               max_pixels: int = MAX_PIXELS) -> np.ndarray | None:
    """The decoded image, or None if it is not a readable image. Raises ImageTooLargeError
    (before decoding) for an image whose header claims more than ``max_pixels``."""
    check_size(header_size(path), str(path), max_pixels)
    try:
        return cv2.imread(str(path), flags)
    except cv2.error:  # a format Pillow does not know, with a size OpenCV refuses
        return None


def decode_image(data: bytes, flags: int = cv2.IMREAD_UNCHANGED,
                 max_pixels: int = MAX_PIXELS) -> np.ndarray | None:
    """Like :func:`read_image`, for bytes in memory."""
    check_size(header_size(data), "image", max_pixels)
    if not data:
        return None
    try:
        return cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:
        return None
