"""FaceAnalyzer: weights integrity, the attribute policy, the CLI contract, and accuracy that
random weights could not reach."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from audience.core.result import KEYS as RESULT_KEYS
from audience.inference.analyzer import DEFAULT_MANIFEST, FaceAnalyzer, WeightsError, load_manifest
from audience.inference.config import AnalyzerConfig, AttributePolicy

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
KEYS = ["source", "face", "box", "score", "emotion", "emotion_scores", "age", "age_bracket",
        "gender", "gender_score", "ethnicity", "ethnicity_scores"]
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared datasets not present")


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer()


def _copy_weights(tmp_path: Path) -> Path:
    manifest = json.loads(DEFAULT_MANIFEST.read_text())
    shutil.copy(DEFAULT_MANIFEST, tmp_path / DEFAULT_MANIFEST.name)
    shutil.copy(DEFAULT_MANIFEST.parent / manifest["file"], tmp_path / manifest["file"])
    return tmp_path / DEFAULT_MANIFEST.name


def test_shipped_weights_match_their_manifest():
    manifest, weights = load_manifest()
    assert weights.stat().st_size < 20e6
    assert manifest["version"] and len(manifest["sha256"]) == 64


def test_tampered_weights_are_refused(tmp_path):
    path = _copy_weights(tmp_path)
    weights = tmp_path / json.loads(path.read_text())["file"]
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="do not match their manifest"):
        FaceAnalyzer(AnalyzerConfig(weights=str(path)))


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    ("{not json", "malformed"),
    ('{"file": "missing.onnx", "sha256": "0"}', "not found"),
])
def test_broken_manifests_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "m.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(WeightsError, match=message):
        load_manifest(path)


def test_ethnicity_is_off_by_default(analyzer):
    assert AttributePolicy().ethnicity is False
    faces = analyzer.analyze([np.full((48, 48), 120, np.uint8)] * 2)
    assert all(f.ethnicity is None and f.ethnicity_scores is None for f in faces)
    assert all(f.emotion and f.gender and f.age is not None for f in faces)


@pytest.mark.parametrize("names, present, absent", [
    ("emotion", {"emotion"}, {"age", "gender", "ethnicity"}),
    ("age,gender", {"age", "gender"}, {"emotion", "ethnicity"}),
    ("emotion,age,gender,ethnicity", {"emotion", "age", "gender", "ethnicity"}, set()),
])
def test_policy_selects_heads(names, present, absent):
    a = FaceAnalyzer(policy=AttributePolicy.from_names(names))
    d = a.analyze([np.full((48, 48), 90, np.uint8)])[0].to_dict()
    assert all(d[k] is not None for k in present)
    assert all(d[k] is None for k in absent)


def test_unknown_attribute_is_rejected():
    with pytest.raises(ValueError, match="unknown attribute"):
        AttributePolicy.from_names("emotion,mood")


def test_empty_batch(analyzer):
    assert analyzer.analyze([]) == []


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "audience", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


@needs_shared
def test_analyze_json_contract():
    photo = SHARED / "images" / "solvay_conference.jpg"
    proc = _cli("analyze", str(photo), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    # the shared copy is a crop of the 1927 photo: six faces are fully visible
    assert len(rows) == 6
    for row in rows:
        assert list(row) == KEYS == list(RESULT_KEYS)  # the API's to_dict() keys
        assert row["ethnicity"] is None and row["ethnicity_scores"] is None
        assert row["emotion"] in row["emotion_scores"] and len(row["box"]) == 4


@needs_shared
def test_analyze_aligned_with_ethnicity():
    chips = sorted((SHARED / "utkface" / "crop_part1").iterdir())[:2]
    proc = _cli("analyze", *map(str, chips), "--aligned", "--json",
                "--attributes", "emotion,age,gender,ethnicity")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 2 and all(r["ethnicity"] in r["ethnicity_scores"] for r in rows)


@pytest.mark.parametrize("args, message", [
    (["analyze", "/nonexistent.jpg"], "not found"),
    (["analyze", "README.md"], "cannot decode"),
    (["analyze", "x.jpg", "--attributes", "mood"], "unknown attribute"),
])
def test_analyze_errors_are_one_clear_line(args, message):
    proc = _cli(*args)
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr


@needs_shared
def test_accuracy_smoke_fer2013(analyzer):
    """500 PrivateTest rows: random weights score about 1/7 to 1/4 (majority class)."""
    from audience.models.data import load_fer2013

    data = load_fer2013(SHARED / "fer2013" / "fer2013.csv.gz", splits=("PrivateTest",))
    faces = analyzer.analyze(list(data.images[:500]))
    from audience.models.data import EMOTIONS

    pred = [EMOTIONS.index(f.emotion) for f in faces]
    acc = np.mean(np.array(pred) == data.labels[:500])
    assert acc > 0.50, acc


@needs_shared
def test_accuracy_smoke_utkface():
    """200 held-out UTKFace chips spread over the split (file names sort by age, so every
    8th): gender well above chance, age error far below always guessing the median."""
    import cv2

    from audience.ingest.detect import chip_detector, chip_landmarks
    from audience.models.data import load_utkface

    data = load_utkface(SHARED / "utkface" / "crop_part1", split="test")
    pick = np.arange(0, len(data.paths), 8)[:200]
    data = data.subset(np.isin(np.arange(len(data.paths)), pick))
    det = chip_detector()
    imgs = [cv2.imread(str(p)) for p in data.paths]
    a = FaceAnalyzer(policy=AttributePolicy.from_names("age,gender"))
    faces = a.analyze(imgs, [chip_landmarks(i, det)[0] for i in imgs])
    female = np.array([f.gender == "female" for f in faces])
    gender_acc = np.mean(female == data.gender.astype(bool))
    mae = np.mean(np.abs(np.array([f.age for f in faces]) - data.age))
    baseline_mae = np.mean(np.abs(data.age - np.median(data.age)))
    assert gender_acc > 0.75, gender_acc
    assert mae < 0.6 * baseline_mae, (mae, baseline_mae)
