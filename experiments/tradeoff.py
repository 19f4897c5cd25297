"""Speed side of the backbone trade-off: ONNX Runtime faces/s of candidate backbones.

``python experiments/tradeoff.py`` builds each candidate (untrained: speed does not depend on
the weights), exports it exactly as ``models.export`` does and times batch 64 with all four heads;
``--int8`` also times it quantized as ``models.quantize`` does (calibrated on random inputs:
the speed of int8 kernels does not depend on the ranges). Accuracy needs a training run per
candidate; experiments/architecture.md pairs both where measured.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

CANDIDATES: dict[str, dict[str, Any]] = {
    "vgg-32-256": {"widths": (32, 64, 128, 256)},
    "vgg-24-192": {"widths": (24, 48, 96, 192)},
    "vgg-16-128": {"widths": (16, 32, 64, 128)},
    "sep-32-256": {"widths": (32, 64, 128, 256), "backbone": "sep"},
    "sep-48-384": {"widths": (48, 96, 192, 384), "backbone": "sep"},
    # 2.0.0: the teachers recipe's network (global average pooling, colour input)
    "vgg-32-256-gap": {"widths": (32, 64, 128, 256), "head_type": "gap", "channels": 3},
    # the input-size pilot's network (models/pilot.py): two convs at full resolution
    "vgg2-32-256-gap": {"widths": (32, 64, 128, 256), "backbone": "vgg2", "head_type": "gap",
                        "channels": 3},
    # wider networks the int8 speed-up (2.2.0) could pay for
    "vgg-48-384-gap": {"widths": (48, 96, 192, 384), "head_type": "gap", "channels": 3},
    "vgg-64-512-gap": {"widths": (64, 128, 256, 512), "head_type": "gap", "channels": 3},
    # one network with more room in its last block, where emotion and the demographics meet
    "vgg-32-320-gap": {"widths": (32, 64, 128, 320), "head_type": "gap", "channels": 3},
    "vgg-32-384-gap": {"widths": (32, 64, 128, 384), "head_type": "gap", "channels": 3},
    "vgg-40-320-gap": {"widths": (40, 80, 160, 320), "head_type": "gap", "channels": 3},
    # emotion with its own last block beside the demographics' (audience train --emotion-block)
    "vgg-32-256-gap-e256": {"widths": (32, 64, 128, 256), "head_type": "gap", "channels": 3,
                            "emotion_block": 256},
    "vgg-32-256-gap-e128": {"widths": (32, 64, 128, 256), "head_type": "gap", "channels": 3,
                            "emotion_block": 128},
    "vgg-32-256-gap-e160": {"widths": (32, 64, 128, 256), "head_type": "gap", "channels": 3,
                            "emotion_block": 160},
}


def _rate(sess, x: np.ndarray, seconds: float) -> float:
    """Faces/s of one ONNX Runtime InferenceSession on the batch ``x`` (the analyzer bench)."""
    from audience.inference.bench import rate

    name = sess.get_inputs()[0].name
    return round(rate(lambda: sess.run(None, {name: x}), len(x), seconds), 1)


def measure(size: int, seconds: float, widths: tuple[int, ...], backbone: str = "vgg",
            head_type: str = "flatten", channels: int = 1, int8: bool = False,
            emotion_block: int = 0) -> dict:
    import onnxruntime as ort

    from audience.models.net import build_model

    model = build_model(size, widths, backbone=backbone, channels=channels, head_type=head_type,
                        emotion_block=emotion_block)
    model(np.zeros((1, size, size, channels), np.float32), training=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        model.export(str(path), format="onnx", verbose=False)
        x = np.random.default_rng(0).standard_normal((64, size, size, channels), np.float32)
        out = {"params": int(model.count_params()), "faces_per_s_b64": _rate(
            ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), x, seconds)}
        if int8:
            from audience.models.quantize import quantize_onnx

            quantize_onnx(path, Path(tmp) / "int8.onnx", np.concatenate([x, x]))
            out["faces_per_s_b64_int8"] = _rate(ort.InferenceSession(
                str(Path(tmp) / "int8.onnx"), providers=["CPUExecutionProvider"]), x, seconds)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--only", choices=sorted(CANDIDATES), action="append",
                        help="measure only this candidate (repeatable)")
    parser.add_argument("--int8", action="store_true",
                        help="also time each candidate quantized to int8 (models.quantize)")
    args = parser.parse_args()
    for name, spec in CANDIDATES.items():  # each spec is measure()'s keyword arguments
        if args.only and name not in args.only:
            continue
        print(json.dumps({"backbone": name, "input": args.size,
                          **measure(args.size, args.seconds, int8=args.int8, **spec)}))


if __name__ == "__main__":
    main()
