"""audience: anonymous, aggregate retail audience analytics from store cameras.

The public API, imported lazily so that ``import audience`` stays cheap::

    from audience import analyze
    faces = analyze("shop.jpg")  # or a BGR array: one FaceResult per face, largest first
    rows = [f.to_dict() for f in faces]  # {"box": [...], "emotion": ..., "age": ...}

    from audience import FaceAnalyzer
    labels = FaceAnalyzer().analyze(crops)  # a batch of face crops -> FaceAttributes each

Everything else is reached through the subpackages (``audience.ingest``, ``audience.inference``,
``audience.storage``, ``audience.reports``, ``audience.models``); see docs/development.md "Layout".
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "FaceAnalyzer": "audience.inference.analyzer",
    "AnalyzerConfig": "audience.inference.config",
    "AttributePolicy": "audience.inference.config",
    "analyze": "audience.api",
    "analyze_images": "audience.api",
    "FaceResult": "audience.core.result",
    "Face": "audience.core.face",
    "Track": "audience.core.face",
    "FaceAttributes": "audience.core.visit",
    "Visit": "audience.core.visit",
    "AudienceError": "audience.core.errors",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'audience' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
