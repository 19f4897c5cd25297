"""Weight files: where the shipped ones live and how they are verified (sha256)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from audience.core.errors import WeightsError

#: models/weights, found beside this package (the same in a checkout and in a wheel).
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "models" / "weights"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verified(path: Path, expected: str, what: str) -> Path:
    """``path`` if it exists and its sha256 is ``expected``; else a WeightsError saying so."""
    if not path.is_file():
        raise WeightsError(f"{what} {path} not found: reinstall the package or restore the file")
    actual = sha256(path)
    if actual != expected:
        raise WeightsError(f"{what} {path.name} does not match its recorded sha256 "
                           f"({actual[:12]}... != {expected[:12]}...): refusing to load a "
                           "modified or corrupt file; restore it or re-export it")
    return path
