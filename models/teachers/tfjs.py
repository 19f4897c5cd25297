"""Read TensorFlow.js weight files: a manifest of named tensors over ``.bin`` shards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

_DTYPES = {"float32": np.float32, "int32": np.int32, "uint8": np.uint8, "float16": np.float16,
           "uint16": np.uint16}


def read_weights(manifest: list[dict], folder: Path) -> dict[str, np.ndarray]:
    """Named float32 (or int32) arrays from a TFJS ``weightsManifest``.

    Quantised tensors are stored as uint8/uint16 with ``scale`` and ``min``
    (value = q * scale + min) or as float16; they come back as float32.
    """
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        buf = b"".join((folder / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            quant = spec.get("quantization")
            dtype = np.dtype(_DTYPES[quant["dtype"] if quant else spec["dtype"]])
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            raw = np.frombuffer(buf, dtype, count, offset)
            offset += count * dtype.itemsize
            if quant and "scale" in quant:
                value = raw.astype(np.float32) * quant["scale"] + quant["min"]
            elif quant:  # float16
                value = raw.astype(np.float32)
            else:
                value = raw.copy()
            out[spec["name"]] = value.reshape(spec["shape"])
    return out


def read_manifest_file(path: Path) -> dict[str, np.ndarray]:
    """face-api.js style: ``*-weights_manifest.json`` beside its ``.bin``."""
    return read_weights(json.loads(path.read_text()), path.parent)
