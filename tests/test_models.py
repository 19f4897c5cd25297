"""Loaders, the shared preprocessing function, and its parity across training and serving."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from audience.core.preprocess import (
    INPUT_SIZE,
    LUMA_BGR,
    TEMPLATE,
    align_face,
    prepare_batch,
    prepare_face,
    to_channels,
)
from audience.models.data import (
    chip_detector,
    chip_landmarks,
    load_fer2013,
    load_ferplus,
    load_utkface,
    parse_utk_name,
    utk_split,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
PIXELS = " ".join(["128"] * 2304)


def _write(path: Path, text: str, gz: bool) -> Path:
    if gz:
        path = path.with_suffix(".csv.gz")
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_fer_loader_skips_malformed_rows(tmp_path, caplog, gz):
    rows = [
        f"3,{PIXELS},Training",
        f"9,{PIXELS},Training",  # label out of range
        "2,1 2 3,PublicTest",  # too few pixels
        f"x,{PIXELS},Training",  # not a number
        f"4,{' '.join(['300'] * 2304)},PrivateTest",  # out of 0..255
        "5",  # missing columns
        f"6,{PIXELS},PrivateTest",
    ]
    path = _write(tmp_path / "fer.csv", "emotion,pixels,Usage\n" + "\n".join(rows) + "\n", gz)
    with caplog.at_level(logging.WARNING):
        data = load_fer2013(path)
    assert data.labels.tolist() == [3, 6]
    assert data.rows.tolist() == [0, 6]
    assert data.images.shape == (2, 48, 48) and data.images.dtype == np.uint8
    assert "skipped 5 malformed rows" in caplog.text
    assert data.split("PrivateTest").labels.tolist() == [6]


@pytest.mark.parametrize("content, message", [
    ("", "expected the header"),
    ("a,b,c\n1,2,3\n", "expected the header"),
])
def test_fer_loader_rejects_wrong_header(tmp_path, content, message):
    path = tmp_path / "x.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_fer2013(path)


def test_fer_loader_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_fer2013(tmp_path / "nope.csv")


def test_ferplus_votes_map_to_fer_order(tmp_path):
    header = ("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,"
              "unknown,NF")
    rows = ["Training,a.png,0,10,0,0,0,0,0,0,0,0",  # all happiness -> FER class 3
            "Training,b.png,5,0,0,0,5,0,0,0,0,0",  # neutral + anger
            "Training,c.png,0,0,0,0,0,0,0,0,0,10",  # not a face: no target
            "Training,d.png,oops"]  # malformed
    path = tmp_path / "ferplus.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    votes = load_ferplus(path, 4)
    assert votes[0].argmax() == 3 and votes[0].max() == 1
    assert votes[1][0] == pytest.approx(0.5) and votes[1][6] == pytest.approx(0.5)
    assert votes[2].sum() == 0 and votes[3].sum() == 0


@pytest.mark.parametrize("name, expected", [
    ("25_1_2_20170116174525125.jpg.chip.jpg", (25, 1, 2)),
    ("1_0_0_2016.jpg.chip.jpg", (1, 0, 0)),
    ("39_1_20170116174525125.jpg.chip.jpg", None),  # missing field (as in the real data)
    ("x_1_2_2017.jpg", None),
    ("25_3_2_2017.jpg", None),  # gender out of range
    ("25_1_7_2017.jpg", None),  # race out of range
])
def test_utk_names(name, expected):
    assert parse_utk_name(name) == expected


def test_utk_loader_skips_malformed_and_splits_stably(tmp_path, caplog):
    img = np.zeros((20, 20, 3), np.uint8)
    names = [f"{20 + i}_{i % 2}_{i % 5}_2017{i:04d}.jpg.chip.jpg" for i in range(30)]
    for n in names + ["61_1_20170109150557335.jpg.chip.jpg"]:
        cv2.imwrite(str(tmp_path / n), img)
    with caplog.at_level(logging.WARNING):
        data = load_utkface(tmp_path)
    assert len(data.paths) == 30 and "skipped 1 files" in caplog.text
    parts = {s: load_utkface(tmp_path, split=s) for s in ("train", "val", "test")}
    assert sum(len(p.paths) for p in parts.values()) == 30
    assert {p.name for p in parts["test"].paths} == {n for n in names if utk_split(n) == "test"}
    twice = data.take(np.tile(np.arange(3), 2))  # oversampling: --utk-repeat
    assert [p.name for p in twice.paths] == [p.name for p in data.paths[:3]] * 2
    assert twice.age.tolist() == data.age[:3].tolist() * 2


def _face_image() -> tuple[np.ndarray, np.ndarray]:
    """A synthetic 'face' with known landmarks at 3x the template, slightly rotated."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (200, 220, 3), dtype=np.uint8)
    marks = TEMPLATE * 144 + np.array([30, 20], np.float32)
    return img, marks


@pytest.mark.parametrize("convert", [
    lambda g: g,
    lambda g: g[:, :, None],
    lambda g: cv2.cvtColor(g, cv2.COLOR_GRAY2BGR),
    lambda g: cv2.cvtColor(g, cv2.COLOR_GRAY2BGRA),
])
@pytest.mark.parametrize("channels", [1, 3])
def test_prepare_face_accepts_gray_bgr_bgra_alike(convert, channels):
    gray = np.random.default_rng(1).integers(0, 255, (48, 48), dtype=np.uint8)
    x = prepare_face(convert(gray), channels=channels)
    assert x.shape == (INPUT_SIZE, INPUT_SIZE, channels) and x.dtype == np.float32
    np.testing.assert_allclose(to_channels(x, 1), prepare_face(gray), atol=1e-5)
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3


def test_a_colour_input_is_the_gray_input_plus_colour():
    """The luma of a prepared colour face is the prepared gray face (up to uint8 rounding of
    OpenCV's gray), so a gray model carries over to colour (models.warmstart)."""
    bgr = np.random.default_rng(2).integers(0, 255, (60, 60, 3), dtype=np.uint8)
    colour = prepare_face(bgr, channels=3)
    assert colour.shape == (INPUT_SIZE, INPUT_SIZE, 3)
    assert not np.allclose(colour[..., 0], colour[..., 2])  # the colour is kept
    diff = np.abs(colour @ LUMA_BGR - prepare_face(bgr)[..., 0])
    assert diff.max() < 0.06 and diff.mean() < 0.02  # a grey level of rounding or two
    np.testing.assert_allclose(to_channels(prepare_face(bgr[..., :1]), 3),
                               prepare_face(bgr[..., :1], channels=3), atol=1e-5)


def test_prepare_face_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        prepare_face(np.zeros((48, 48), np.float32))
    with pytest.raises(ValueError, match="unsupported image shape"):
        prepare_face(np.zeros((48, 48, 2), np.uint8))


@pytest.mark.parametrize("channels", [1, 3])
def test_camera_path_equals_training_path(channels):
    """Camera: align to a uint8 crop, ship it, prepare it. Training/eval: prepare with
    landmarks. Both must give the same network input."""
    img, marks = _face_image()
    img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img
    img[..., 2] = cv2.add(img[..., 2], 20)  # a colour cast, so the channels differ
    crop = align_face(img, marks, channels=channels)
    shape = (INPUT_SIZE, INPUT_SIZE) if channels == 1 else (INPUT_SIZE, INPUT_SIZE, 3)
    assert crop.shape == shape and crop.dtype == np.uint8
    prepared = prepare_face(img, marks, channels=channels)
    np.testing.assert_allclose(prepare_face(crop, channels=channels), prepared, atol=1e-5)
    np.testing.assert_allclose(prepare_batch([img], [marks], channels=channels)[0], prepared)


def test_alignment_puts_landmarks_on_the_template():
    img = np.zeros((300, 300), np.uint8)
    marks = np.array([[100, 120], [160, 110], [132, 150], [108, 185], [158, 178]], np.float32)
    for x, y in marks.astype(int):
        cv2.circle(img, (x, y), 3, 255, -1)
    crop = align_face(img, marks, size=192)
    ys, xs = np.nonzero(crop > 100)
    found = np.array([xs.mean(), ys.mean()])
    assert np.linalg.norm(found - (TEMPLATE * 192).mean(0)) < 12


@pytest.mark.skipif(not (SHARED / "utkface").is_dir(), reason="../shared datasets not present")
@pytest.mark.parametrize("channels", [1, 3])
def test_utk_training_input_equals_evaluation_input(tmp_path, monkeypatch, channels):
    """The cached training array for UTKFace equals what the analyzer prepares at eval time."""
    from audience.models.data import aligned_utk_faces

    monkeypatch.setenv("AUDIENCE_CACHE", str(tmp_path))
    data = load_utkface(SHARED / "utkface" / "crop_part1", split="test")
    data = data.subset(np.arange(len(data.paths)) < 4)
    train_x = aligned_utk_faces(data, INPUT_SIZE, channels)
    det = chip_detector()
    imgs = [cv2.imread(str(p)) for p in data.paths]
    eval_x = prepare_batch(imgs, [chip_landmarks(i, det)[0] for i in imgs], channels=channels)
    np.testing.assert_allclose(train_x, eval_x, atol=1e-5)
