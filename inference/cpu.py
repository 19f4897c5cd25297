"""Whether this CPU computes a model's int8 graph as the CPU its figures were measured on.

ONNX Runtime multiplies uint8 activations by int8 weights. Without VNNI (x86 AVX2 only) its
kernels add pairs of 8-bit products in 16 bits, which saturate when the weights use all 8 bits,
so such a model labels faces differently there: 2.4.0 reads FER-2013 PublicTest 61.4% on an
AVX2 CPU against 68.1% with VNNI, and children's gender in the wild 73.5% against 78.4%. A
model quantized with 7-bit weights (``models.quantize``: reduce_range) does not saturate. Its
confusion matrices, and so the corrected shares, hold only where it computes as measured.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: x86 flags with which the int8 products are summed in 32 bits (no saturation)
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str] | None:
    """The CPU's x86 feature flags (empty where cpuinfo has none, as on ARM), or None where
    they cannot be read (not Linux)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def _eight_bit_weights(manifest: Mapping[str, Any]) -> bool:
    """An int8 graph whose weights use all 8 bits (quantized without reduce_range)."""
    method = str((manifest.get("quantization") or {}).get("method", ""))
    return "int8" in method and "reduce_range" not in method


def int8_saturates(manifest: Mapping[str, Any], flags: set[str] | None = None,
                   machine: str | None = None) -> bool:
    """True where this x86 CPU lacks VNNI and the model's int8 weights use all 8 bits: its
    labels here differ from the model card's (module docstring)."""
    if not _eight_bit_weights(manifest):
        return False
    arch = (machine or platform.machine()).lower()
    if arch not in ("x86_64", "amd64", "i686", "x86"):
        return False
    found = cpu_flags() if flags is None else flags
    return found is not None and "avx2" in found and not any(f in found for f in VNNI_FLAGS)
