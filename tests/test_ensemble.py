"""models.ensemble: several exported networks averaged in one ONNX graph, served as one model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from audience.core.errors import InputError
from audience.core.weights import sha256
from audience.inference.analyzer import DEFAULT_MANIFEST, FaceAnalyzer, load_manifest
from audience.inference.config import AnalyzerConfig, AttributePolicy
from audience.models.ensemble import ensemble

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
FLOAT32 = DEFAULT_MANIFEST.parent / "audience-mt-2.1.0.json"  # a float32 network in the tree
HEADS = AttributePolicy.from_names("emotion,age,gender,ethnicity")


def _member(tmp_path: Path, name: str, noise: float, tasks: list[str] | None = None,
            **input_changes) -> Path:
    """2.1.0's float32 network under a manifest of its own, its weights perturbed by
    ``noise`` (relative) so that two members answer differently."""
    import onnx
    from onnx import numpy_helper

    full, src = load_manifest(FLOAT32)
    model = onnx.load(str(src))
    rng = np.random.default_rng(len(name))
    for init in model.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.dtype == np.float32 and w.size > 1:
            w = w * (1 + noise * rng.standard_normal(w.shape)).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(w, init.name))
    folder = tmp_path / name
    folder.mkdir()
    onnx.save(model, str(folder / "net.onnx"))
    manifest = {k: v for k, v in full.items() if k not in ("float32", "quantization",
                                                           "flip_average")}
    manifest.update(version=name, file="net.onnx", sha256=sha256(folder / "net.onnx"))
    manifest["input"] = {**manifest["input"], **input_changes}
    if tasks is not None:
        manifest["training"] = {**manifest.get("training", {}), "tasks": tasks}
    path = folder / "audience-mt.json"
    path.write_text(json.dumps(manifest))
    return path


def test_the_merged_graph_answers_the_mean_of_its_members(tmp_path):
    a, b = _member(tmp_path, "a", 0.0), _member(tmp_path, "bb", 0.2)
    path = ensemble([a, b], "9.0.0", tmp_path / "ens", int8=False)
    manifest = json.loads(path.read_text())
    assert [m["version"] for m in manifest["ensemble"]] == ["a", "bb"]
    assert manifest["parameters"] == 2 * json.loads(a.read_text())["parameters"]
    x = np.random.default_rng(3).normal(size=(9, 48, 48, 3)).astype(np.float32)
    out = {}
    for key, weights in (("a", a), ("b", b), ("ens", path)):
        out[key] = FaceAnalyzer(AnalyzerConfig(weights=str(weights), flip_average=False),
                                HEADS).predict(x)
    for head in out["ens"]:
        assert not np.allclose(out["a"][head], out["b"][head], atol=1e-3), head
        np.testing.assert_allclose(out["ens"][head], (out["a"][head] + out["b"][head]) / 2,
                                   atol=1e-5, err_msg=head)


def _predict(weights: Path) -> dict[str, np.ndarray]:
    x = np.random.default_rng(5).normal(size=(6, 48, 48, 3)).astype(np.float32)
    return FaceAnalyzer(AnalyzerConfig(weights=str(weights), flip_average=False),
                        HEADS).predict(x)


@pytest.mark.parametrize("tasks, use", [
    (["emotion"], None),  # a specialist counts for the heads it trained
    (None, {1: "emotion"}),  # --use 2:emotion narrows a full member
])
def test_each_head_is_the_mean_of_the_members_used_for_it(tmp_path, tasks, use):
    a, b = _member(tmp_path, "a", 0.0), _member(tmp_path, "bb", 0.2, tasks=tasks)
    path = ensemble([a, b], "9.0.0", tmp_path / "ens", int8=False, use=use)
    assert [m["used_for"] for m in json.loads(path.read_text())["ensemble"]] == [
        ["emotion", "age", "gender", "ethnicity"], ["emotion"]]
    pa, pb, ens = _predict(a), _predict(b), _predict(path)
    np.testing.assert_allclose(ens["emotion"], (pa["emotion"] + pb["emotion"]) / 2, atol=1e-5)
    for head in ("age", "gender", "ethnicity"):
        np.testing.assert_allclose(ens[head], pa[head], atol=1e-5, err_msg=head)


def test_a_specialist_served_alone_says_which_heads_it_never_trained(tmp_path, caplog):
    b = _member(tmp_path, "bb", 0.0, tasks=["emotion"])
    FaceAnalyzer(AnalyzerConfig(weights=str(b)), AttributePolicy.from_names("emotion"))
    assert "trained for" not in caplog.text
    FaceAnalyzer(AnalyzerConfig(weights=str(b)), HEADS)
    assert "trained for emotion only: its age, gender, ethnicity output" in caplog.text
    caplog.clear()
    FaceAnalyzer(AnalyzerConfig(weights=str(ensemble([_member(tmp_path, "a", 0.0), b], "9.0.0",
                                                      tmp_path / "ens", int8=False))), HEADS)
    assert "trained for" not in caplog.text


def test_a_member_is_used_only_for_heads_it_trained(tmp_path):
    from audience.models.ensemble import parse_use

    a, b = _member(tmp_path, "a", 0.0), _member(tmp_path, "bb", 0.1, tasks=["emotion"])
    with pytest.raises(InputError, match="only for heads it trained"):
        ensemble([a, b], "9.0.0", tmp_path / "ens", int8=False, use={1: "gender"})
    with pytest.raises(InputError, match="no member is used for the age head"):
        ensemble([b, b], "9.0.0", tmp_path / "ens", int8=False)
    for bad in ("3:emotion", "emotion", "x:age"):
        with pytest.raises(InputError, match="MEMBER:HEADS"):
            parse_use([bad], 2)
    assert parse_use(["2:age,gender"], 2) == {1: "age,gender"}


def test_members_of_another_layout_are_refused(tmp_path):
    a, gray = _member(tmp_path, "a", 0.0), _member(tmp_path, "gray", 0.0, channels=1)
    with pytest.raises(InputError, match="another input"):
        ensemble([a, gray], "9.0.0", tmp_path / "ens", int8=False)
    with pytest.raises(InputError, match="at least two"):
        ensemble([a], "9.0.0", tmp_path / "ens", int8=False)


def test_a_warm_start_from_an_ensemble_is_refused(tmp_path):
    from audience.models.warmstart import keras_from_manifest

    a, b = _member(tmp_path, "a", 0.0), _member(tmp_path, "bb", 0.1)
    path = ensemble([a, b], "9.0.0", tmp_path / "ens", int8=False)
    with pytest.raises(ValueError, match="ensemble of 2 networks"):
        keras_from_manifest(path, 3, np.zeros((4, 48, 48, 3), np.float32))


def test_ensemble_errors_are_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "audience.models.ensemble", str(DEFAULT_MANIFEST),
                           "--version", "9.0.0", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "at least two" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared datasets not present")
def test_an_int8_ensemble_keeps_only_the_int8_graph_and_answers_as_the_float32_one(tmp_path):
    a, b = _member(tmp_path, "a", 0.0), _member(tmp_path, "bb", 0.1)
    float32 = ensemble([a, b], "9.0.0", tmp_path / "f32", int8=False)
    int8 = ensemble([a, b], "9.0.0", tmp_path / "q", calibration=32)
    manifest = json.loads(int8.read_text())
    assert manifest["file"].endswith("-int8.onnx") and "float32" not in manifest
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == [
        "audience-mt-9.0.0-int8.onnx", "audience-mt.json"]
    x = np.random.default_rng(4).normal(size=(64, 48, 48, 3)).astype(np.float32)
    want = FaceAnalyzer(AnalyzerConfig(weights=str(float32)), HEADS).predict(x)
    got = FaceAnalyzer(AnalyzerConfig(weights=str(int8)), HEADS).predict(x)
    assert ((want["gender"] >= 0.5) == (got["gender"] >= 0.5)).mean() > 0.85
    assert np.abs(want["emotion"] - got["emotion"]).mean() < 0.05
    with pytest.raises(InputError, match="already serves an int8 model"):
        from audience.models.quantize import quantize_manifest

        quantize_manifest(int8)


def test_merging_drops_what_no_output_needs(tmp_path):
    import onnx

    a, b = _member(tmp_path, "a", 0.0), _member(tmp_path, "bb", 0.1, tasks=["emotion"])
    one = len(onnx.load(str(load_manifest(a)[1])).graph.node)
    full = ensemble([a, b], "9.0.0", tmp_path / "full", int8=False)
    graph = onnx.load(str(load_manifest(full)[1])).graph
    # b's age, gender and ethnicity layers feed nothing: gone, and every weight left is read
    assert len(graph.node) < 2 * one + 4
    assert not [n.name for n in graph.node if n.name.startswith("m1/") and "gender" in n.name]
    read = {i for n in graph.node for i in n.input}
    assert all(init.name in read for init in graph.initializer)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared datasets not present")
def test_int8_members_compose_into_what_quantizing_their_merge_gives(tmp_path):
    from audience.models.quantize import quantize_manifest

    a, b = _member(tmp_path, "a", 0.0), _member(tmp_path, "bb", 0.1, tasks=["emotion"])
    c = _member(tmp_path, "c", 0.15, tasks=["age", "gender", "ethnicity"])
    together = ensemble([a, b], "9.0.0", tmp_path / "together", calibration=32)
    for member in (a, b, c):
        quantize_manifest(member, n=32)
    composed = ensemble([a, b], "9.0.0", tmp_path / "composed", quantized=True)
    assert json.loads(composed.read_text())["quantization"]["calibration"].startswith("32 ")
    want, got = _predict(together), _predict(composed)
    for head in want:
        np.testing.assert_allclose(got[head], want[head], atol=2e-3, err_msg=head)
    # A shipped ensemble serves as a member for some heads: only the networks it used for them
    # stay in the graph, and they answer exactly as before.
    shipped = ensemble([a, b], "9.1.0", tmp_path / "shipped", quantized=True,
                       use={0: "age,gender,ethnicity"})
    nested = ensemble([shipped, c], "9.2.0", tmp_path / "nested", quantized=True,
                      use={0: "emotion"})
    manifest = json.loads(nested.read_text())
    assert manifest["parameters"] == 2 * json.loads(a.read_text())["parameters"]
    assert [m["version"] for m in manifest["ensemble"][0]["ensemble"]] == ["a", "bb"]
    ps, pc, pn = _predict(shipped), _predict(c), _predict(nested)
    np.testing.assert_array_equal(pn["emotion"], ps["emotion"])
    for head in ("age", "gender", "ethnicity"):
        np.testing.assert_array_equal(pn[head], pc[head], err_msg=head)
    with pytest.raises(InputError, match="not an int8 model"):
        ensemble([together, _member(tmp_path, "d", 0.0)], "9.3.0", tmp_path / "x",
                 quantized=True)
