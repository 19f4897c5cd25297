"""Pieces of the teachers recipe that need no dataset: the KD loss, the time-aware cosine,
the teacher-target layout and the float32 export of a bfloat16-trained model."""

from __future__ import annotations

import numpy as np
import pytest


def test_kd_loss_is_cross_entropy_plus_scaled_kl():
    import keras

    from audience.models.net import masked_kd
    from audience.models.teachers.targets import kd_target, soften

    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(7), 4).astype(np.float32)
    teacher = rng.dirichlet(np.ones(7), 4).astype(np.float32)
    hard = np.eye(7, dtype=np.float32)[[0, 3, 6, 2]]
    mask = np.array([1, 1, 0, 0.5], np.float32)
    y = kd_target(hard, teacher, 3.0, 0.5, mask)
    assert y.shape == (4, 7 + 7 + 3)
    got = np.asarray(masked_kd(y, p))
    ce = np.asarray(keras.losses.categorical_crossentropy(hard, p))
    soft, student = soften(teacher, 3.0), soften(p, 3.0)
    kl = (soft * (np.log(soft) - np.log(student))).sum(1)
    want = (0.5 * ce + 0.5 * 9 * kl) * mask * (4 / mask.sum())
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)
    assert got[2] == 0  # a masked sample adds nothing


def test_accuracy_reads_the_hard_target_of_a_kd_target():
    from audience.models.net import MaskedAccuracy
    from audience.models.teachers.targets import kd_target

    hard = np.eye(7, dtype=np.float32)[[1, 2]]
    teacher = np.eye(7, dtype=np.float32)[[5, 5]] * 0.9 + 0.1 / 7  # disagrees with the label
    y = kd_target(hard, teacher, 3.0, 0.5, np.ones(2, np.float32))
    m = MaskedAccuracy()
    m.update_state(y, np.eye(7, dtype=np.float32)[[1, 5]])
    assert float(m.result()) == pytest.approx(0.5)


def test_cosine_by_progress_ends_on_steps_or_on_time(tmp_path):
    from audience.models.schedule import CosineByProgress

    s = CosineByProgress(0.05, total_steps=1000, warmup_steps=100, budget_s=3600,
                         state=tmp_path / "elapsed.json")
    assert s.lr_at(0, 0)[0] == pytest.approx(0.05 * 0.05)
    assert s.lr_at(100, 0)[0] == pytest.approx(0.05)
    assert s.lr_at(550, 0)[0] == pytest.approx(0.025)  # half-way by steps
    assert s.lr_at(200, 1800)[0] == pytest.approx(0.025)  # half-way by time comes first
    lr, progress = s.lr_at(300, 3600)
    assert lr == pytest.approx(0.0) and progress == 1.0
    (tmp_path / "elapsed.json").write_text('{"seconds": 1800}')  # a resumed run remembers
    resumed = CosineByProgress(0.05, 1000, 100, 3600, tmp_path / "elapsed.json")
    assert resumed.elapsed() >= 1800


def test_a_bfloat16_model_exports_in_float32(tmp_path):
    import keras

    from audience.models.export import float32_model
    from audience.models.net import build_model

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model(48, (8, 8, 16, 16), 0.4, backbone="vgg", channels=3,
                            head_type="gap")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    x = np.random.default_rng(0).standard_normal((2, 48, 48, 3)).astype(np.float32)
    clone = float32_model(model)
    assert all(layer.dtype_policy.name == "float32" for layer in clone.layers)
    a, b = model(x, training=False), clone(x, training=False)
    for head in ("emotion", "age", "gender", "ethnicity"):
        np.testing.assert_allclose(np.asarray(a[head]), np.asarray(b[head]), atol=0.05)


def test_weights_in_git_stay_under_20_mb():
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    files = subprocess.run(["git", "ls-files", "models/weights"], cwd=root, capture_output=True,
                           text=True, check=True).stdout.split()
    total = sum((root / f).stat().st_size for f in files if (root / f).is_file())
    assert total <= 20e6, f"{total / 1e6:.1f} MB of weights in git"


def test_age_loss_is_finite_for_any_pseudo_label():
    """A teacher's age can leave 0..100 (AgeGenderNet gives -9 on some FER-2013 faces); the
    label-distribution loss must stay finite there, even at mask 0."""
    from audience.models.net import AGE_BINS, masked_age

    p = np.full((3, AGE_BINS), 1 / AGE_BINS, np.float32)
    y = np.array([[-9.3, 1.0], [-30.0, 0.0], [116.0, 1.0]], np.float32)
    assert np.isfinite(np.asarray(masked_age(y, p))).all()


def test_two_emotion_teachers_blend_by_share():
    from audience.models.teachers.cache import blend

    mini = np.array([[0.7, 0.3], [0.0, 1.0]], np.float32)
    expr = np.array([[0.1, 0.9], [1.0, 0.0]], np.float32)
    np.testing.assert_allclose(blend(mini, expr, 0.0), mini)
    np.testing.assert_allclose(blend(mini, expr, 0.15),
                               [[0.61, 0.39], [0.15, 0.85]], atol=1e-6)


def test_a_shipped_models_emotion_teaches_through_its_own_analyzer(tmp_path, monkeypatch):
    from audience.models.teachers import cache

    monkeypatch.setattr(cache, "cache_dir", lambda: tmp_path)
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), np.uint8)
    p = cache.fer_model_emotion("fer.csv", faces, "models/weights/audience-mt.json")
    assert p.shape == (5, 7) and np.allclose(p.sum(1), 1, atol=0.03)  # int8 steps of 1/255
    again = cache.fer_model_emotion("fer.csv", faces, "models/weights/audience-mt.json")
    np.testing.assert_array_equal(p, again)  # from the cache
    assert len(list(tmp_path.glob("teacher_fer_model_*.npy"))) == 1
