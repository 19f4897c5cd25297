"""Training utilities that need TensorFlow (installed by `make setup` with the train extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")


def test_batchnorm_recalibration_matches_the_data():
    from audience.models.train import recalibrate_batchnorm

    inp = keras.Input((8, 8, 1))
    conv = keras.layers.Conv2D(4, 3, padding="same")(inp)
    out = keras.layers.BatchNormalization(momentum=0.99)(conv)
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).normal(3.0, 2.0, (1024, 8, 8, 1)).astype(np.float32)
    features = keras.Model(inp, conv)(x).numpy()
    bn = model.layers[-1]
    recalibrate_batchnorm(model, x, batch_size=128)
    np.testing.assert_allclose(bn.moving_mean.numpy(), features.mean(axis=(0, 1, 2)), rtol=1e-3,
                               atol=1e-3)
    # the mean of per-batch variances, within a few percent of the overall variance
    np.testing.assert_allclose(bn.moving_variance.numpy(), features.var(axis=(0, 1, 2)),
                               rtol=0.05)
    assert bn.momentum == 0.99


def test_distillation_blends_labels_and_fills_unlabelled_heads():
    from audience.models.train import distill

    n_fer, n_utk = 2, 3
    n = n_fer + n_utk
    y = {
        "emotion": np.c_[np.r_[np.eye(7)[[0, 3]], np.zeros((n_utk, 7))], [1, 1, 0, 0, 0]],
        "gender": np.c_[[0, 0, 1, 0, 1], [0, 0, 1, 1, 1]].astype(float),
        "age": np.c_[[0, 0, 20, 40, 60], [0, 0, 1, 1, 1]].astype(float),
        "ethnicity": np.c_[np.r_[np.zeros((n_fer, 5)), np.eye(5)[[0, 1, 2]]],
                           [0, 0, 1, 1, 1]],
    }
    age_probs = np.zeros((n, 101))
    age_probs[:, 30] = 1.0  # the teacher says 30 for everyone
    teacher = {"emotion": np.full((n, 7), 1 / 7), "gender": np.full((n, 1), 0.8),
               "age": age_probs, "ethnicity": np.full((n, 5), 0.2)}
    distill(y, teacher, n_fer, share=0.5)
    # Labelled FER emotion: half label, half teacher; UTK rows: the teacher, weight 0.5.
    np.testing.assert_allclose(y["emotion"][0, :7], 0.5 * np.eye(7)[0] + 0.5 / 7)
    np.testing.assert_allclose(y["emotion"][n_fer:, 7], 0.5)
    np.testing.assert_allclose(y["emotion"][n_fer:, :7], 1 / 7)
    # Gender: UTK blended, FER filled from the teacher with mask 0.5.
    np.testing.assert_allclose(y["gender"][:, 0], [0.8, 0.8, 0.9, 0.4, 0.9])
    np.testing.assert_allclose(y["gender"][:, 1], [0.5, 0.5, 1, 1, 1])
    # Age and ethnicity stay UTK-only.
    np.testing.assert_allclose(y["age"][:, 0], [0, 0, 25, 35, 45])
    np.testing.assert_allclose(y["age"][:, 1], [0, 0, 1, 1, 1])
    np.testing.assert_allclose(y["ethnicity"][:n_fer], 0)
    np.testing.assert_allclose(y["ethnicity"][n_fer, :5], 0.5 * np.eye(5)[0] + 0.1)


@pytest.mark.parametrize("backbone, widths", [("vgg", (8, 16, 16, 32)), ("sep", (8, 16, 16, 32))])
def test_every_backbone_gives_the_four_heads(backbone, widths):
    from audience.models.net import build_model

    model = build_model(48, widths, backbone=backbone)
    out = model(np.zeros((2, 48, 48, 1), np.float32), training=False)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "emotion": (2, 7), "age": (2, 101), "gender": (2, 1), "ethnicity": (2, 5)}


def test_an_unknown_backbone_is_a_clear_error():
    from audience.models.net import build_model

    with pytest.raises(ValueError, match="unknown backbone 'resnet'.*vgg, sep"):
        build_model(48, (8, 16, 16, 32), backbone="resnet")


def test_the_cli_offers_exactly_the_backbones_the_network_builds():
    from audience.models.net import BACKBONES
    from audience.models.train import Backbone

    assert tuple(b.value for b in Backbone) == BACKBONES


@pytest.mark.parametrize("manifest, channels, shipped_structure", [
    ("tests/data/weights/audience-mt-1.1.0.json", 1, ((16, 32, 64, 128), "vgg", "flatten")),
    ("tests/data/weights/audience-mt-1.1.0.json", 3, ((16, 32, 64, 128), "vgg", "flatten")),
    ("models/weights/audience-mt-2.1.0.json", 3, ((32, 64, 128, 256), "vgg", "gap")),
], ids=["1.1.0-gray", "1.1.0-colour", "2.1.0-gap-colour"])
def test_warm_start_from_a_shipped_model_computes_what_it_computes(manifest, channels,
                                                                   shipped_structure):
    """The ONNX weights (BatchNorm folded in) come back into a trainable Keras model with the
    same function: gray inputs fed to the colour model give the gray model's outputs. The
    backbone (vgg, vgg2) and head (flatten, gap) are read off the weights."""
    import onnxruntime as ort

    from audience.core.preprocess import to_channels
    from audience.inference.analyzer import load_manifest
    from audience.models.warmstart import keras_from_manifest, structure

    x = np.random.default_rng(0).normal(size=(64, 48, 48, 1)).astype(np.float32)
    # The float32 network (an int8 model keeps it beside the served file), run as it is.
    info, onnx_path = load_manifest(Path(manifest), float32=True)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    heads = ["emotion", "age", "gender", "ethnicity"]
    feed = to_channels(x, int(info["input"].get("channels", 1)))
    expected = dict(zip(heads, session.run(heads, {session.get_inputs()[0].name: feed}),
                        strict=True))
    model = keras_from_manifest(manifest, channels, to_channels(x, channels))
    assert model.inputs[0].shape[-1] == channels
    assert structure(model) == shipped_structure
    got = model(to_channels(x, channels), training=False)
    for head, value in expected.items():
        np.testing.assert_allclose(np.asarray(got[head]), value, atol=1e-4, err_msg=head)


def test_a_warm_start_under_bfloat16_computes_the_same_in_training_mode():
    """Batch statistics (training mode) must give the function the calibration measured.
    Under --bf16 the calibration was once summed in bfloat16 by numpy: inference mode hid it,
    training started from a wrecked network."""
    from audience.models.warmstart import keras_from_manifest

    x = np.random.default_rng(0).normal(size=(256, 48, 48, 3)).astype(np.float32)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = keras_from_manifest("models/weights/audience-mt-2.1.0.json", 3, x)
        features = keras.Model(model.input, model.get_layer("gap").output)
        trained = np.asarray(features(x, training=True), np.float32)
        served = np.asarray(features(x, training=False), np.float32)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    error = np.abs(trained - served).mean() / np.abs(served).mean()
    assert error < 0.05, f"training mode differs by {error:.0%}"


@pytest.mark.parametrize("manifest, widths", [
    ("models/weights/audience-mt-2.1.0.json", (48, 96, 192, 384)),
    ("tests/data/weights/audience-mt-1.1.0.json", (16, 40, 64, 160)),
], ids=["2.1.0-gap", "1.1.0-flatten"])
def test_a_widened_model_computes_what_the_narrow_one_computes(manifest, widths):
    """Net2WiderNet: new channels copy old ones and the next layer splits their weights, so
    the wider network starts from the narrow one's function, in inference and in training
    mode (batch statistics), while the copies are no longer twins."""
    from audience.models.warmstart import keras_from_manifest, structure, widen

    x = np.random.default_rng(0).normal(size=(256, 48, 48, 3)).astype(np.float32)
    narrow = keras_from_manifest(manifest, 3, x, dropout=0.0)
    wide = widen(narrow, widths, dropout=0.0)
    assert structure(wide)[0] == widths
    assert wide.count_params() > narrow.count_params()
    for training in (False, True):
        want, got = narrow(x, training=training), wide(x, training=training)
        for head in ("emotion", "age", "gender", "ethnicity"):
            np.testing.assert_allclose(np.asarray(got[head]), np.asarray(want[head]),
                                       atol=2e-4, err_msg=f"{head}, training={training}")
    # The last convolution's new channels copy old ones, but read widened inputs with
    # different shares: no two of its channels are twins.
    kernel = wide.get_layer("b3c1").get_weights()[0]
    flat = kernel.reshape(-1, kernel.shape[-1]).T.round(5)
    assert len(np.unique(flat, axis=0)) == widths[-1]


def test_widening_refuses_a_narrower_or_shorter_network():
    from audience.models.warmstart import keras_from_manifest, widen

    x = np.zeros((8, 48, 48, 3), np.float32)
    narrow = keras_from_manifest("models/weights/audience-mt-2.1.0.json", 3, x)
    for widths in ((16, 64, 128, 256), (32, 64, 128)):
        with pytest.raises(ValueError, match="cannot widen"):
            widen(narrow, widths)


def test_an_emotion_block_at_the_last_width_starts_from_the_network_it_grows():
    """Emotion's own last block, copied from the shared one: the grown network computes what
    the shipped one computes (in both modes) until training tells the blocks apart; its
    export warm-starts again, block and all."""
    from audience.models.warmstart import (
        add_emotion_block,
        emotion_block_width,
        keras_from_manifest,
        structure,
        widen,
    )

    x = np.random.default_rng(0).normal(size=(256, 48, 48, 3)).astype(np.float32)
    shipped = keras_from_manifest("models/weights/audience-mt-2.1.0.json", 3, x, dropout=0.0)
    grown = add_emotion_block(shipped, 256, dropout=0.0)
    assert emotion_block_width(grown) == 256 and emotion_block_width(shipped) == 0
    assert structure(grown) == structure(shipped)  # the shared widths are unchanged
    for training in (False, True):
        want, got = shipped(x, training=training), grown(x, training=training)
        for head in ("emotion", "age", "gender", "ethnicity"):
            np.testing.assert_allclose(np.asarray(got[head]), np.asarray(want[head]),
                                       atol=2e-4, err_msg=f"{head}, training={training}")
    with pytest.raises(ValueError, match="already has an emotion block"):
        add_emotion_block(grown, 256)
    with pytest.raises(ValueError, match="before it has an emotion block"):
        widen(grown, (32, 64, 128, 320))


def test_an_emotion_block_of_another_width_starts_fresh_and_keeps_the_demographics():
    from audience.models.warmstart import add_emotion_block, keras_from_manifest

    x = np.random.default_rng(0).normal(size=(64, 48, 48, 3)).astype(np.float32)
    shipped = keras_from_manifest("models/weights/audience-mt-2.1.0.json", 3, x, dropout=0.0)
    grown = add_emotion_block(shipped, 160, dropout=0.0)
    assert grown.get_layer("eb3c1").filters == 160
    want, got = shipped(x, training=False), grown(x, training=False)
    for head in ("age", "gender", "ethnicity"):
        np.testing.assert_allclose(np.asarray(got[head]), np.asarray(want[head]), atol=2e-4)
    assert not np.allclose(np.asarray(got["emotion"]), np.asarray(want["emotion"]), atol=1e-2)


def test_a_network_with_an_emotion_block_exports_and_warm_starts_again(tmp_path):
    from audience.models.export import export
    from audience.models.net import build_model
    from audience.models.warmstart import emotion_block_width, keras_from_manifest

    model = build_model(48, (8, 16, 16, 32), 0.0, channels=3, head_type="gap", emotion_block=24)
    rng = np.random.default_rng(1)
    for layer in model.layers:  # as if trained: zero biases fold away in the export
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
        elif isinstance(layer, keras.layers.Dense):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.1, bias.shape)])
    checkpoint = tmp_path / "m.keras"
    model.save(checkpoint)
    manifest = export(checkpoint, "0.0.1", tmp_path / "export")
    x = np.random.default_rng(0).normal(size=(16, 48, 48, 3)).astype(np.float32)
    again = keras_from_manifest(manifest, 3, None)
    assert emotion_block_width(again) == 24
    want, got = model(x, training=False), again(x, training=False)
    for head in ("emotion", "age", "gender", "ethnicity"):
        np.testing.assert_allclose(np.asarray(got[head]), np.asarray(want[head]), atol=1e-4)


@pytest.mark.parametrize("args, message", [
    (["--channels", "2"], "1 (gray) or 3 (colour)"),
    (["--emotion-block", "128"], "needs a vgg or vgg2 backbone and --head gap"),
    (["--emotion-block", "128", "--head", "gap", "--init-from", "runs/x/best.keras"],
     "start from a manifest (.json)"),
    (["--backbone", "sep", "--init-from", "models/weights/audience-mt-2.1.0.json"],
     "starts a vgg or vgg2 backbone only"),
    (["--tasks", "emotion,mood"], "tasks must be some of emotion, age, gender, ethnicity"),
    (["--tasks", ","], "tasks must be some of"),
    (["--emotion-teacher", "models/weights/audience-mt.json"], "needs --teachers"),
    (["--teachers", "--emotion-teacher", "nowhere.json"], "nowhere.json not found"),
])
def test_train_usage_errors_come_before_any_work(args, message):
    from typer.testing import CliRunner

    from audience.cli import app

    result = CliRunner().invoke(app, ["train", *args])
    text = " ".join(result.output.replace("│", " ").split())  # unwrap the error box
    assert result.exit_code == 2 and message in text


def test_a_specialist_is_scored_and_trained_on_its_own_heads_only():
    from audience.models.net import build_model, compile_model
    from audience.models.train import check_tasks, val_score

    assert check_tasks(("gender", "emotion")) == ("emotion", "gender")  # the network's order
    logs = {"val_emotion_acc": 0.7, "val_gender_acc": 0.9, "val_ethnicity_acc": 0.8,
            "val_age_mae": 5.0}
    assert val_score(logs) == pytest.approx(0.7 + 0.9 + 0.8 - 0.5)
    assert val_score(logs, ("emotion",)) == pytest.approx(0.7)
    assert val_score(logs, ("age", "gender")) == pytest.approx(0.9 - 0.5)
    model = build_model(48, (8, 16, 32, 64), 0.0, channels=3, head_type="gap")
    compile_model(model, 1e-3, tasks=("emotion",))
    x = np.random.default_rng(0).normal(size=(8, 48, 48, 3)).astype(np.float32)
    before = [w.copy() for w in model.get_layer("gender").get_weights()]
    y = {name: np.concatenate([np.random.default_rng(1).random((8, n)),
                               np.ones((8, 1))], 1).astype(np.float32)
         for name, n in (("emotion", 7), ("age", 1), ("gender", 1), ("ethnicity", 5))}
    y["emotion"][:, :7] /= y["emotion"][:, :7].sum(1, keepdims=True)
    model.fit(x, y, epochs=2, verbose=0)
    after = model.get_layer("gender").get_weights()
    # The gender head gets no gradient (AdamW's weight decay still shrinks it a little).
    for b, a in zip(before, after, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-5)


def _hits(emotion, gender, ethnicity, age_error):
    from audience.models.compare import Hits

    return Hits(np.array(emotion, bool), np.array(gender, bool), np.array(ethnicity, bool),
                np.array(age_error, float))


def test_model_comparison_is_paired_and_honest_about_noise():
    from audience.models.compare import discordant, paired_bootstrap

    rng = np.random.default_rng(3)
    base = _hits(rng.random(400) < 0.6, rng.random(200) < 0.85, rng.random(200) < 0.8,
                 rng.random(200) * 10)
    assert base.score() == pytest.approx(base.emotion.mean() + base.gender.mean()
                                         + base.ethnicity.mean() - base.age_error.mean() / 10)
    same = paired_bootstrap(base, base, resamples=200)
    assert same["difference"] == 0 and same["ci95"] == [0, 0] and same["p_not_better"] == 1
    # Right on 30 more FER-2013 images and nothing else: better, and every resample says so.
    better = _hits(base.emotion | (np.arange(400) < 30), base.gender, base.ethnicity,
                   base.age_error)
    gain = paired_bootstrap(base, better, resamples=200)
    assert gain["difference"] > 0 and gain["ci95"][0] >= 0 and gain["p_not_better"] < 0.05
    counts = discordant(base, better)
    assert counts["emotion"]["only_base"] == 0 and counts["gender"] == {
        "only_base": 0, "only_candidate": 0}


@pytest.mark.parametrize("flags, native", [
    ("fpu sse avx512f avx512_vnni avx512_bf16", True),  # AMD EPYC (Zen 4), where --bf16 was used
    ("fpu sse avx512f amx_bf16 amx_tile", True),
    ("fpu sse avx512f avx512_vnni", False),  # Xeon without bf16: emulated, several times slower
])
def test_bf16_is_native_only_with_its_instructions(tmp_path, flags, native):
    from audience.models.train import cpu_has_bf16

    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert cpu_has_bf16(info) is native
    assert cpu_has_bf16(tmp_path / "absent") is True


def test_a_gap_head_warm_start_builds_a_larger_face_with_the_same_weights():
    """``audience train --size 64 --init-from <gap manifest>``: the convolutions and heads are
    the shipped ones (a gap head's weights do not depend on the input side)."""
    from audience.models.warmstart import keras_from_manifest

    manifest = "models/weights/audience-mt-2.1.0.json"
    rng = np.random.default_rng(0)
    small = keras_from_manifest(manifest, 3, rng.normal(size=(32, 48, 48, 3)).astype(np.float32))
    large = keras_from_manifest(manifest, 3, rng.normal(size=(32, 64, 64, 3)).astype(np.float32),
                                size=64)
    assert tuple(large.inputs[0].shape[1:]) == (64, 64, 3)
    kernels = {w.path: w.numpy() for w in small.weights if w.path.endswith("kernel")}
    assert kernels
    for w in large.weights:
        if w.path in kernels:
            np.testing.assert_array_equal(w.numpy(), kernels[w.path], err_msg=w.path)


def test_a_flatten_head_cannot_change_its_input_side():
    from audience.core.errors import InputError
    from audience.models.warmstart import keras_from_manifest

    x = np.zeros((4, 64, 64, 1), np.float32)
    with pytest.raises(InputError, match="flatten head, which fixes its input at 48x48"):
        keras_from_manifest("tests/data/weights/audience-mt-1.1.0.json", 1, x, size=64)


def test_a_64_pixel_model_exports_its_side_and_the_analyzer_feeds_it(tmp_path):
    from audience.inference.analyzer import FaceAnalyzer
    from audience.inference.config import AnalyzerConfig
    from audience.models.export import export
    from audience.models.net import build_model

    model = build_model(64, (8, 8, 16, 16), 0.0, backbone="vgg", channels=3, head_type="gap")
    model.save(tmp_path / "best.keras")
    manifest = export(tmp_path / "best.keras", "0.0.1", tmp_path / "out", training={})
    analyzer = FaceAnalyzer(AnalyzerConfig(weights=str(manifest)))
    assert (analyzer.size, analyzer.channels) == (64, 3)
    face = np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)
    marks = np.array([[70, 80], [130, 80], [100, 110], [75, 140], [125, 140]], np.float32)
    [labels] = analyzer.analyze([face], [marks])
    assert labels.gender in analyzer.genders


def test_a_specialist_is_compared_with_the_base_emotion(monkeypatch):
    """--emotion-from-base: the score difference is the other heads' alone."""
    from types import SimpleNamespace

    from audience.models import compare as cmp

    base = _hits([1, 1, 0, 0], [1, 0], [1, 0], [2.0, 4.0])
    specialist = _hits([0, 0, 0, 0], [1, 1], [1, 0], [2.0, 4.0])  # untrained emotion
    monkeypatch.setattr(cmp, "load_fer2013", lambda *a, **k: SimpleNamespace(labels=[0] * 4))
    monkeypatch.setattr(cmp, "load_utkface", lambda *a, **k: SimpleNamespace(age=[1, 2]))
    monkeypatch.setattr(cmp, "read_utk_chips", lambda utk: ([], []))
    monkeypatch.setattr(cmp, "label", lambda w, *a: (w, base if w == "b" else specialist))
    plain = cmp.compare("b", "s", resamples=50)
    paired = cmp.compare("b", "s", resamples=50, emotion_from_base=True)
    assert plain["paired_bootstrap"]["difference"] == pytest.approx(-0.5 + 0.5)
    assert paired["paired_bootstrap"]["difference"] == pytest.approx(0.5)
    assert paired["candidate"]["model"] == "s (emotion: b)"
    assert paired["discordant"]["emotion"] == {"only_base": 0, "only_candidate": 0}
