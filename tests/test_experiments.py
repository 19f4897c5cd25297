"""The experiments (experiments/, outside the package): they still run against the package,
and the page that quotes their figures is what their JSON renders."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from audience.core.preprocess import TEMPLATE

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def experiment(name: str) -> ModuleType:
    """experiments/<name>.py as a module (the folder is scripts, not an installed package)."""
    spec = importlib.util.spec_from_file_location(f"experiments_{name}", EXPERIMENTS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_architecture_page_is_what_its_json_renders():
    tables = experiment("tables")
    assert tables.PAGE.read_text() == tables.rendered_page(), (
        "experiments/architecture.md is out of date: run `python experiments/tables.py`")


def test_every_trade_off_backbone_has_a_row():
    tables = experiment("tables")
    table = tables.render_tradeoff()
    for line in (tables.EVAL / "tradeoff.jsonl").read_text().splitlines():
        assert f"| {json.loads(line)['backbone']} |" in table


def test_weight_averaging_takes_the_mean_of_the_kept_epochs(tmp_path):
    keras = pytest.importorskip("keras")
    soup = experiment("soup")

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    (tmp_path / "epochs").mkdir()
    for epoch, value in [(9, 1.0), (10, 2.0), (11, 6.0)]:
        model.set_weights([np.full(w.shape, value, np.float32) for w in model.get_weights()])
        model.save_weights(tmp_path / "epochs" / f"epoch-{epoch:03d}.weights.h5")
    files = soup.epoch_files(tmp_path)
    assert [e for e, _ in files] == [9, 10, 11]  # numeric order
    assert [p.name for p in soup.pick(files, last=2)] == ["epoch-010.weights.h5",
                                                          "epoch-011.weights.h5"]
    assert len(soup.pick(files, last=2, first=9)) == 3
    mean = soup.mean_weights(model, soup.pick(files, last=3))
    assert all(np.allclose(w, 3.0) for w in mean)


def test_weight_averaging_needs_two_epochs(tmp_path):
    from audience.core.errors import InputError

    soup = experiment("soup")
    with pytest.raises(InputError, match="--keep-epochs-from"):
        soup.pick(soup.epoch_files(tmp_path), last=8)


@pytest.mark.parametrize("zoom, whole, top", [
    (1.0, 0.0, 0.0),  # the chip is exactly the tight crop
    (0.5, 0.75, 1.0),  # twice as wide: the chip fills the centre quarter
])
def test_chip_framing_measures_what_a_wider_crop_repeats(zoom, whole, top):
    marks = (TEMPLATE * 200).astype(np.float32)
    got = experiment("chip_framing").outside((200, 200), marks, zoom)
    assert got[0] == pytest.approx(whole, abs=0.02)
    assert got[1] == pytest.approx(top, abs=0.02)


@pytest.mark.parametrize("name", ["chip_framing", "clip_reading", "measure_template", "pilot",
                                  "small_faces", "soup", "tradeoff", "tables"])
def test_each_experiment_imports_against_the_package(name):
    assert experiment(name).__doc__


def test_the_hair_band_is_masked_at_any_input_side():
    clip = experiment("clip_reading")
    for size in (48, 64):
        x = np.ones((2, size, size, 1), np.float32)
        masked = clip.mask_hair(x, size)
        top, side = clip.HAIR_TOP * size // 48, clip.HAIR_SIDE * size // 48
        assert masked[:, :top].sum() == 0 and masked[:, :, :side].sum() == 0
        assert masked[:, :, -side:].sum() == 0 and (masked[:, top:, side:-side] == 1).all()
        assert (x == 1).all()  # the input is left as it was


def test_a_small_face_view_is_the_shrunk_face_or_a_frame_of_it_near_its_size():
    small_faces = experiment("small_faces")
    from audience.models.face_px import shrink

    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (200, 200, 3), np.uint8)
    marks = np.array([[70, 90], [130, 90], [100, 120], [78, 150], [122, 150]], np.float32)
    plain, plain_marks = small_faces.render(image, marks, 100.0, 16, None)
    expected, expected_marks = shrink(image, marks, 100.0, 16)
    assert (plain == expected).all() and np.allclose(plain_marks, expected_marks)
    for _ in range(5):
        view, view_marks = small_faces.render(image, marks, 100.0, 16, rng)
        assert view.dtype == np.uint8 and 29 <= view.shape[0] <= 35  # 32 px, scaled 0.92-1.08
        # the same face: 8% of a landmark 25 px from the corner, plus at most one pixel of phase
        assert np.abs(view_marks - expected_marks).max() < 3.0


def test_the_kept_candidate_loads_as_a_model():
    from audience.inference.analyzer import load_manifest

    manifest, onnx = load_manifest(EXPERIMENTS / "weights" / "mt-3.0c" / "audience-mt.json")
    assert manifest["version"] == "3.0.0-c" and onnx.is_file()
    _, float32 = load_manifest(EXPERIMENTS / "weights" / "mt-3.0c" / "audience-mt.json",
                               float32=True)
    assert float32.is_file() and float32 != onnx
