"""`audience explain`: where each head looks, on the shipped model's float network.

Faces: frame 10 of the bundled clip (three people, found by YuNet as `audience analyze`
finds them). The Keras rebuild is checked against ONNX Runtime on the same faces.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from audience.cli import app
from audience.core.weights import WEIGHTS_DIR
from audience.models.explain import HEADS, METHODS, find_faces, network_for

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "ingest" / "assets" / "face-demographics-walking-and-pause.gif"
FLOAT = WEIGHTS_DIR / "audience-mt-2.1.0.json"


@pytest.fixture(scope="module")
def frame_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cap = cv2.VideoCapture(str(CLIP))
    for _ in range(10):  # frame 10: all three visitors in view
        ok, img = cap.read()
        assert ok
    cap.release()
    path = tmp_path_factory.mktemp("explain") / "clip-frame.png"
    cv2.imwrite(str(path), img)
    return path


@pytest.fixture(scope="module")
def blank_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("explain") / "wall.png"
    cv2.imwrite(str(path), np.full((240, 320, 3), 180, np.uint8))
    return path


@pytest.mark.parametrize(("head", "version", "says"), [
    ("emotion", "2.1.0", "2.4.0-e, trained from 2.1.0, whose float weights are not in the tree"),
    ("age", "2.1.0", "the float network 2.4.0 serves age from"),
    ("gender", "2.1.0", "the float network 2.4.0 serves gender from"),
    ("ethnicity", "2.1.0", "the float network 2.4.0 serves ethnicity from"),
])
def test_each_head_is_explained_on_the_float_network_it_is_served_from(
        head: str, version: str, says: str) -> None:
    net = network_for(head)
    assert net.version == version and says in net.note


def test_a_single_network_manifest_is_its_own_float_network() -> None:
    net = network_for("gender", FLOAT)
    assert net.manifest == FLOAT and "2.1.0's float network" in net.note


# -- with TensorFlow ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def explainers() -> dict:
    pytest.importorskip("tensorflow", reason="the training environment is not installed")
    from audience.models.explain import Explainer

    return {h: Explainer(h, network_for(h)) for h in HEADS}


@pytest.fixture(scope="module")
def faces(frame_png: Path) -> list[tuple[np.ndarray, np.ndarray | None]]:
    ((_, img, marks),) = find_faces([frame_png])
    assert len(marks) == 3
    return [(img, m) for m in marks]


def test_the_keras_rebuild_computes_the_onnx_network(explainers: dict, faces: list) -> None:
    from audience.core.preprocess import prepare_face
    from audience.inference.analyzer import FaceAnalyzer
    from audience.inference.config import AnalyzerConfig, AttributePolicy

    x = np.stack([prepare_face(img, m, 48, 3) for img, m in faces])
    onnx = FaceAnalyzer(AnalyzerConfig(weights=str(FLOAT)),
                        AttributePolicy.from_names(",".join(HEADS))).predict(x)
    keras = explainers["gender"].predict(x)
    for head in HEADS:
        np.testing.assert_allclose(keras[head], onnx[head], atol=1e-4)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("head", HEADS)
def test_maps_have_the_face_shape_are_finite_and_not_constant(
        explainers: dict, faces: list, head: str, method: str) -> None:
    from audience.models.explain import explain_faces

    out = explain_faces(explainers[head], faces, method, side=96)
    assert len(out) == 3
    for e in out:
        assert e.heat.shape == (48, 48) and e.heat.dtype == np.float32
        assert np.isfinite(e.heat).all()
        assert e.heat.min() == 0.0 and e.heat.max() == pytest.approx(1.0)
        assert e.heat.std() > 0.05  # a map, not a flat field
        assert e.face.shape == (96, 96, 3)
    # Different faces, different maps.
    assert np.abs(out[0].heat - out[1].heat).mean() > 0.01


def test_explain_command_writes_one_picture_per_face(explainers: dict, frame_png: Path,
                                                     tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["explain", str(frame_png), "--head", "gender",
                                   "--method", "gradcam", "--out", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["network"] == "audience-mt 2.1.0"
    assert [f["face"] for f in r["faces"]] == [0, 1, 2]
    assert {f["gender"] for f in r["faces"]} <= {"male", "female"}
    for f in r["faces"]:
        png = cv2.imread(f["png"])
        assert png.shape == (40 + 144, 2 * 144, 3)  # caption over face | map
        face, heat = png[40:, :144].astype(int), png[40:, 144:].astype(int)
        assert np.abs(face - heat).mean() > 10  # the map is drawn over the face
    # The plain output names the network the maps were computed on.
    res = CliRunner().invoke(app, ["explain", str(frame_png), "--head", "emotion",
                                   "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0].startswith("emotion: maps computed on audience-mt 2.1.0")
    assert len(list(tmp_path.glob("clip-frame-face*-emotion-guided.png"))) == 3


# -- one-line errors, exit 2 -------------------------------------------------------------------
def _one_line_error(res, needle: str) -> None:
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], res.stderr
    assert "Traceback" not in res.output


def test_an_image_without_a_face_is_one_line(frame_png: Path, blank_png: Path,
                                             tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["explain", str(frame_png), str(blank_png), "--head",
                                   "gender", "--out", str(out)])
    _one_line_error(res, f"no face found in {blank_png}")
    assert not out.exists()  # nothing written for the good image either


@pytest.mark.parametrize(("head", "manifest", "needle"), [
    ("hair", None, "has no 'hair' head: choose one of emotion, age, gender, ethnicity"),
    ("ethnicity", "no-ethnicity", "has no 'ethnicity' head: choose one of emotion, age, gender"),
])
def test_a_head_the_model_lacks_is_one_line(frame_png: Path, tmp_path: Path, head: str,
                                            manifest: str | None, needle: str) -> None:
    args = ["explain", str(frame_png), "--head", head, "--out", str(tmp_path)]
    if manifest:
        m = json.loads(FLOAT.read_text())
        del m["outputs"]["ethnicity"]
        path = tmp_path / f"{manifest}.json"
        path.write_text(json.dumps(m))
        args += ["--weights", str(path)]
    _one_line_error(CliRunner().invoke(app, args), needle)


def test_without_tensorflow_it_is_one_line(frame_png: Path, tmp_path: Path) -> None:
    """The runtime install has no TensorFlow: `audience explain` says what to install."""
    block = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None; "
             "from audience.cli import main; sys.argv = ['audience'] + sys.argv[1:]; main()")
    out = subprocess.run([sys.executable, "-c", block, "explain", str(frame_png), "--head",
                          "gender", "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert "needs the training environment (TensorFlow)" in lines[-1]
    assert "Traceback" not in out.stderr


def test_help_names_the_network_and_imports_no_tensorflow() -> None:
    code = ("import sys; from typer.testing import CliRunner; from audience.cli import app; "
            "r = CliRunner().invoke(app, ['explain', '--help'], terminal_width=200); "
            "print(r.output); print('TF', 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert "TF False" in out.stdout
    text = " ".join(out.stdout.split())
    assert "2.4.0-e" in text and "2.1.0" in text and "--method" in text


@pytest.mark.parametrize("head", HEADS)
def test_the_model_card_figures_are_committed_and_small(head: str) -> None:
    """`make explain-figures` writes them; the card shows them."""
    path = ROOT / "models" / "figures" / f"explain-{head}.png"
    assert path.is_file(), "run `make explain-figures`"
    assert path.stat().st_size < 300_000
    assert cv2.imread(str(path)) is not None


def test_the_measured_regions_split_the_crop() -> None:
    """`explain_figures --measure`'s regions: disjoint, covering, the landmarks inside."""
    from audience.core.preprocess import TEMPLATE
    from audience.models.explain_figures import regions

    masks = regions(48)
    total = sum(m.astype(int) for m in masks.values())
    assert (total == 1).all()
    for x, y in (TEMPLATE * 48).astype(int):
        assert masks["inner"][y, x]
    assert masks["edge"][0].all() and masks["edge"][:, -1].all()
