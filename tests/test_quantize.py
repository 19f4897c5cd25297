"""The served model: int8 (models.quantize), averaged with the mirrored face where its
manifest says so, and the float32 network kept beside it for warm starts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from audience.core.errors import InputError
from audience.inference.analyzer import DEFAULT_MANIFEST, FaceAnalyzer, load_manifest
from audience.inference.config import AnalyzerConfig, AttributePolicy

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
HEADS = AttributePolicy.from_names("emotion,age,gender,ethnicity")
#: a float32 network in the tree (the shipped 2.4.0 is an int8 ensemble with none beside it)
FLOAT32 = DEFAULT_MANIFEST.parent / "audience-mt-2.1.0.json"


def _float32_copy(tmp_path: Path, flip: bool | None = None) -> Path:
    """A float32 network from the tree under a manifest of its own in ``tmp_path``."""
    full = json.loads(FLOAT32.read_text())
    entry = full.get("float32", full)
    manifest = {k: v for k, v in full.items() if k not in ("float32", "quantization",
                                                           "flip_average")}
    manifest.update(file=entry["file"], sha256=entry["sha256"])
    if flip is not None:
        manifest["flip_average"] = flip
    shutil.copy(FLOAT32.parent / entry["file"], tmp_path / entry["file"])
    path = tmp_path / "audience-mt.json"
    path.write_text(json.dumps(manifest))
    return path


def _faces(n: int = 16) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, 48, 48, 3)).astype(np.float32)


def test_the_manifest_turns_on_mirror_averaging_and_the_config_can_turn_it_off(tmp_path):
    x = _faces()
    plain = FaceAnalyzer(AnalyzerConfig(weights=str(_float32_copy(tmp_path, flip=False))), HEADS)
    flipped = FaceAnalyzer(AnalyzerConfig(weights=str(_float32_copy(tmp_path, flip=True)),
                                          batch_size=5), HEADS)
    off = FaceAnalyzer(AnalyzerConfig(weights=str(_float32_copy(tmp_path, flip=True)),
                                      flip_average=False), HEADS)
    assert (plain.flip_average, flipped.flip_average, off.flip_average) == (False, True, False)
    a, b, got = plain.predict(x), plain.predict(x[:, :, ::-1]), flipped.predict(x)
    for head in a:
        np.testing.assert_allclose(got[head], (a[head] + b[head]) / 2, atol=1e-5, err_msg=head)
        np.testing.assert_allclose(off.predict(x)[head], a[head], atol=1e-6, err_msg=head)


def test_the_shipped_model_is_int8_and_names_its_float32_sources():
    """An int8 model keeps its float32 network beside it (warm starts read it); an ensemble
    names its members' float32 networks instead (models.ensemble rebuilds the merged graph)."""
    manifest, served = load_manifest()
    assert isinstance(manifest["flip_average"], bool)
    assert served.name.endswith("-int8.onnx")
    assert "Training" in manifest["quantization"]["calibration"]
    if "ensemble" in manifest:
        assert "float32" not in manifest and len(manifest["ensemble"]) >= 2
        assert all(len(m["sha256"]) == 64 and m["file"].endswith(".onnx")
                   for m in manifest["ensemble"])
    else:
        _, float32 = load_manifest(float32=True)
        assert served != float32 and served.stat().st_size < float32.stat().st_size / 2


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared datasets not present")
def test_quantizing_keeps_the_answers_and_rewrites_the_manifest(tmp_path):
    """Calibrated on a few training faces, the int8 model answers as the float32 one does on
    faces it was not calibrated on (FER-2013 PublicTest rows)."""
    from audience.core.preprocess import prepare_batch
    from audience.models.data import load_fer2013
    from audience.models.quantize import quantize_manifest

    path = _float32_copy(tmp_path)
    before = FaceAnalyzer(AnalyzerConfig(weights=str(path)), HEADS)
    quantize_manifest(path, SHARED / "fer2013" / "fer2013.csv.gz",
                      [SHARED / "utkface" / "crop_part1"], flip_average=True, n=64)
    manifest = json.loads(path.read_text())
    assert manifest["file"].endswith("-int8.onnx") and manifest["flip_average"] is True
    assert (tmp_path / manifest["float32"]["file"]).is_file()
    after = FaceAnalyzer(AnalyzerConfig(weights=str(path), flip_average=False), HEADS)
    fer = load_fer2013(SHARED / "fer2013" / "fer2013.csv.gz", splits=("PublicTest",))
    x = prepare_batch(list(fer.images[:300]), size=48, channels=3)
    a, b = before.predict(x), after.predict(x)
    assert (a["emotion"].argmax(1) == b["emotion"].argmax(1)).mean() > 0.9
    assert ((a["gender"] >= 0.5) == (b["gender"] >= 0.5)).mean() > 0.9
    assert np.abs(a["emotion"] - b["emotion"]).mean() < 0.05
    with pytest.raises(InputError, match="already serves an int8 model"):
        quantize_manifest(path)


@pytest.mark.parametrize("args, message", [
    (["/nonexistent/audience-mt.json"], "not found"),
    ([str(DEFAULT_MANIFEST)], "already serves an int8 model"),
], ids=["missing-manifest", "already-int8"])
def test_quantize_errors_are_one_line_and_exit_2(args, message):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "audience.models.quantize", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
