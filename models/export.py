"""Export a trained Keras checkpoint to ONNX and write the manifest inference trusts.

The manifest records the version, the sha256 of the ONNX file, the input framing and the
class orders. ``inference.analyzer`` refuses a weights file whose hash does not match.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from audience.core.errors import MissingFileError
from audience.core.preprocess import TEMPLATE
from audience.core.weights import WEIGHTS_DIR, sha256
from audience.models.data import EMOTIONS, ETHNICITIES, GENDERS

log = logging.getLogger(__name__)

MANIFEST = WEIGHTS_DIR / "audience-mt.json"


def float32_model(model):
    """The same network and weights with every layer in float32: a model trained in mixed
    bfloat16 would otherwise export bfloat16 ops, which ONNX Runtime runs slowly or not at all."""
    import keras

    def strip(obj):
        if isinstance(obj, dict):
            return {k: ("float32" if k == "dtype" and isinstance(v, dict)
                        and "mixed" in str(v.get("config", {}).get("name", "")) else strip(v))
                    for k, v in obj.items()}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model
    clone = keras.Model.from_config(strip(model.get_config()))
    clone.set_weights(model.get_weights())
    return clone


def run_config(checkpoint: str | Path) -> dict:
    """The training configuration saved beside a checkpoint (``audience train`` writes
    config.json into its run folder), for the manifest; empty if there is none."""
    path = Path(checkpoint).parent / "config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def export(checkpoint: str | Path, version: str, out_dir: Path = WEIGHTS_DIR,
           metrics: dict | None = None, training: dict | None = None,
           name: str = "audience-mt", int8: bool = False, flip_average: bool = False) -> Path:
    """Write ``<name>-<version>.onnx`` and ``<name>.json`` into ``out_dir``.

    ``int8``: also write ``<name>-<version>-int8.onnx`` (``models.quantize``, calibrated on the
    training faces the run's config names) and serve it, with ``flip_average``, as shipped.

    ``audience-mt`` is the model inference loads by default; another name (a faster trade-off
    point, say) is chosen with ``analyzer.weights: models/weights/<name>.json``.
    """
    if not Path(checkpoint).is_file():
        raise MissingFileError(f"{checkpoint} does not exist: pass a .keras checkpoint of an "
                               "`audience train` run (its folder holds best.keras)")
    import keras

    from audience.models.net import AGE_BINS, CUSTOM_OBJECTS

    model = float32_model(keras.models.load_model(checkpoint, custom_objects=CUSTOM_OBJECTS))
    size, channels = int(model.inputs[0].shape[1]), int(model.inputs[0].shape[-1])  # 3: BGR
    model(np.zeros((1, size, size, channels), np.float32), training=False)  # build
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f"{name}-{version}.onnx"
    model.export(str(onnx_path), format="onnx", verbose=False)
    manifest: dict[str, Any] = {
        "name": name,
        "version": version,
        "file": onnx_path.name,
        "sha256": sha256(onnx_path),
        "runtime": "onnxruntime",
        "input": {"name": "face", "size": size, "channels": channels,
                  "preprocess": "audience.core.preprocess.prepare_face",
                  "template": np.round(TEMPLATE, 4).tolist()},
        "outputs": {"emotion": list(EMOTIONS), "age": {"bins": AGE_BINS, "decode": "expectation"},
                    "gender": {"sigmoid_of": GENDERS[1], "classes": list(GENDERS)},
                    "ethnicity": list(ETHNICITIES)},
        "parameters": int(model.count_params()),
        "metrics": metrics or {},
        "training": training if training is not None else run_config(checkpoint),
    }
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("exported %s (%.1f MB, sha256 %s)", onnx_path, onnx_path.stat().st_size / 1e6,
             manifest["sha256"][:12])
    if int8:
        from audience.models.quantize import quantize_manifest, training_sources

        quantize_manifest(path, *training_sources(manifest["training"]),
                          flip_average=flip_average)
    return path
