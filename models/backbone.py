"""The backbone families of ``models.net`` (``audience train --backbone``).

Defined without TensorFlow or NumPy, so that `--help` and a typo need no framework import.
"""

from __future__ import annotations

from enum import StrEnum


class Backbone(StrEnum):
    """Backbone families of ``models.net``."""

    vgg = "vgg"  #: plain 3x3 convolutions
    sep = "sep"  #: residual depthwise-separable blocks
    vgg2 = "vgg2"  #: vgg with two convs in the first block too (the teachers note's student)


#: Layer-name prefix of emotion's own last block (``audience train --emotion-block W``):
#: ``eb3c0`` is emotion's copy of the shared ``b3c0``.
EMOTION_BLOCK = "e"
