"""Static int8 quantization of an exported model, for serving.

ONNX Runtime runs the quantized network much faster on a CPU with VNNI (the full analyzer on
2 AMD EPYC cores: 5,500 against 2,037 faces/s at batch 64) and it scored the same on the
validation splits, so the shipped model is int8. ``flip_average`` in the manifest makes the
analyzer average each face with its mirror image (off in 2.2.0: the model card says why). The
float32 file stays beside the int8 one: warm starts (``models.warmstart``) read it.

Calibration uses training faces only (never a validation or test split), the same way every
time: a seeded sample of FER-2013 ``Training`` rows and UTKFace ``train`` chips, each with its
mirror, prepared exactly as the analyzer prepares faces.

    python -m audience.models.quantize models/weights/audience-mt.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from audience.core.errors import InputError
from audience.core.weights import sha256
from audience.models.data import DatasetError

log = logging.getLogger(__name__)

FER_CSV = Path("../shared/datasets/fer2013/fer2013.csv.gz")
UTK_DIRS = (Path("../shared/datasets/utkface/crop_part1"), Path("../shared/datasets/utkface/more"))
# reduce_range: weights in 7 bits. ONNX Runtime's uint8 x int8 kernels on a CPU without VNNI
# (AVX2) add products in pairs into 16 bits, which 8-bit weights can saturate: on such a CPU,
# full-range weights agreed with the float32 network on 85% of 300 FER-2013 PublicTest faces'
# emotions, 7-bit weights on over 90% (tests/test_quantize.py).
METHOD = ("static int8 (ONNX Runtime QDQ): 7-bit int8 weights per output channel (reduce_range, "
          "so CPUs without VNNI do not saturate), uint8 activations, min-max calibration")


def training_sources(training: dict) -> tuple[Path, list[Path]]:
    """The FER-2013 CSV and UTKFace folders a manifest's training configuration names, to
    calibrate on (the shared datasets where it names none)."""
    return (Path(training.get("fer_csv") or FER_CSV),
            [Path(d) for d in training.get("utk_dirs") or UTK_DIRS])


def quantization_entry(n: int) -> dict[str, str]:
    """The manifest's record of how its int8 file was made."""
    return {"method": METHOD,
            "calibration": f"{n} FER-2013 Training faces and {n} UTKFace train chips (seed 0), "
                           "each with its mirror"}


def calibration_faces(fer_csv: Path, utk_dirs: Sequence[Path], n: int = 512, size: int = 48,
                      channels: int = 3, seed: int = 0) -> np.ndarray:
    """``n`` FER-2013 Training faces and ``n`` UTKFace train chips, and their mirrors."""
    from audience.core.preprocess import prepare_batch
    from audience.models.data import load_fer2013, read_utk_chips
    from audience.models.utk import load_utk_dirs

    rng = np.random.default_rng(seed)
    fer = load_fer2013(fer_csv, splits=("Training",))
    utk = load_utk_dirs(list(utk_dirs), split="train")
    if len(fer.labels) == 0 or not utk.paths:
        raise DatasetError(f"no training faces for calibration in {fer_csv} and "
                           f"{', '.join(map(str, utk_dirs))}: pass the FER-2013 CSV and the "
                           "UTKFace folders")
    fi = rng.choice(len(fer.labels), min(n, len(fer.labels)), replace=False)
    ui = rng.choice(len(utk.paths), min(n, len(utk.paths)), replace=False)
    utk = utk.take(np.sort(ui))
    images, found = read_utk_chips(utk)
    marks: list[np.ndarray | None] = list(found)
    x = np.concatenate([prepare_batch([fer.images[i] for i in np.sort(fi)], size=size,
                                      channels=channels),
                        prepare_batch(images, marks, size, channels)]).astype(np.float32)
    return np.concatenate([x, x[:, :, ::-1]])


def quantize_onnx(src: Path, dst: Path, faces: np.ndarray, batch: int = 64) -> None:
    """Write the int8 version of ``src`` to ``dst``, calibrated on ``faces``."""
    import tempfile

    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = onnx.load(str(src), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.i = 0

        def get_next(self) -> dict | None:
            if self.i >= len(faces):
                return None
            self.i += batch
            return {name: faces[self.i - batch:self.i]}

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre))
        quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)


def quantize_manifest(manifest_path: Path, fer_csv: Path = FER_CSV,
                      utk_dirs: Sequence[Path] = UTK_DIRS, flip_average: bool = False,
                      n: int = 512) -> Path:
    """Quantize the model a manifest names and rewrite the manifest to serve the int8 file
    (``file``), keeping the float32 one under ``float32``; idempotent on a float32 manifest."""
    from audience.inference.analyzer import load_manifest

    manifest, src = load_manifest(manifest_path)  # a missing or altered file: WeightsError
    if "float32" in manifest or "quantization" in manifest:
        raise InputError(f"{manifest_path} already serves an int8 model: quantize the "
                         "float32 model's own manifest")
    dst = src.with_name(f"{src.stem}-int8.onnx")
    size = int(manifest["input"]["size"])
    channels = int(manifest["input"].get("channels", 1))
    faces = calibration_faces(fer_csv, utk_dirs, n=n, size=size, channels=channels)
    quantize_onnx(src, dst, faces)
    manifest["float32"] = {"file": manifest["file"], "sha256": manifest["sha256"]}
    manifest["file"], manifest["sha256"] = dst.name, sha256(dst)
    manifest["quantization"] = quantization_entry(n)
    manifest["flip_average"] = flip_average
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("quantized %s -> %s (%.1f MB)", src.name, dst.name, dst.stat().st_size / 1e6)
    return manifest_path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m audience.models.quantize", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest", type=Path, help="manifest of an exported float32 model")
    p.add_argument("--fer-csv", type=Path, default=FER_CSV, help="FER-2013 CSV (.gz ok)")
    p.add_argument("--utk-dir", type=Path, action="append", default=None,
                   help="UTKFace folder (repeat; default crop_part1 and more)")
    p.add_argument("--flip", action="store_true",
                   help="make the analyzer average each face with its mirror (flip_average)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        print(quantize_manifest(args.manifest, args.fer_csv, args.utk_dir or list(UTK_DIRS),
                                flip_average=args.flip))
    except InputError as exc:  # one line and exit 2, as every command
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
