"""Image files and buffers read safely: the header's size is checked before any decoding.

A 20000x20000 PNG is a few kilobytes on disk and 1.2 GB once decoded; a header may claim
100000x100000 and make OpenCV raise. Pillow reads only the header (``Image.open`` is lazy),
so an image is refused by its claimed size for the price of reading a few bytes.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import cv2
import numpy as np

from audience.core.errors import InputError

#: The most pixels an image may claim: 8K UHD (33 MP) passes, 20000x20000 (400 MP) does not.
MAX_PIXELS = 40_000_000


class ImageTooLargeError(InputError):
    """An image whose header claims more than MAX_PIXELS pixels; it was not decoded."""


def header_size(source: bytes | str | Path, what: str = "image",
                max_pixels: int = MAX_PIXELS) -> tuple[int, int] | None:
    """(width, height) from the image header, or None if Pillow does not know the format.
    Raises ImageTooLargeError for a header that claims more than ``max_pixels``."""
    from PIL import Image, UnidentifiedImageError

    try:
        fh = io.BytesIO(source) if isinstance(source, bytes) else source
        with Image.open(fh) as img:
            size = int(img.size[0]), int(img.size[1])
    except Image.DecompressionBombError as exc:  # Pillow's own, far higher, limit
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        n = f"{int(claimed[1]):,}" if claimed else "too many"
        raise _too_large(what, f"{n} pixels", max_pixels) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    check_size(size, what, max_pixels)
    return size


def _too_large(what: str, claim: str, max_pixels: int) -> ImageTooLargeError:
    return ImageTooLargeError(f"{what} claims {claim}, more than the {max_pixels:,} pixels "
                              "this tool decodes: scale it down first")


def check_size(size: tuple[int, int] | None, what: str, max_pixels: int = MAX_PIXELS) -> None:
    if size is not None and size[0] * size[1] > max_pixels:
        raise _too_large(what, f"{size[0]}x{size[1]} pixels", max_pixels)


def read_image(path: str | Path, flags: int = cv2.IMREAD_UNCHANGED,
               max_pixels: int = MAX_PIXELS) -> np.ndarray | None:
    """The decoded image, or None if it is not a readable image. Raises ImageTooLargeError
    (before decoding) for an image whose header claims more than ``max_pixels``."""
    header_size(path, str(path), max_pixels)
    try:
        return cv2.imread(str(path), flags)
    except cv2.error:  # a format Pillow does not know, with a size OpenCV refuses
        return None
