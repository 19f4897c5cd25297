"""Faces in the wild (AAF, LFW folders: models.wild) and the rule that withholds a child's
apparent gender (the analyzer and the per-visit aggregation)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from audience.core.face import Face, Track
from audience.core.visit import FaceAttributes
from audience.inference.aggregate import aggregate
from audience.inference.analyzer import DEFAULT_MANIFEST, FaceAnalyzer
from audience.inference.config import AnalyzerConfig, AttributePolicy
from audience.models.data import AGE_GROUPS9, DatasetError, age_group9, age_group9_accuracy
from audience.models.wild import age_band, gender_by_band, load_wild

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
CLIP = ROOT / "ingest" / "assets" / "face-demographics-walking-and-pause.gif"
needs_shared = pytest.mark.skipif(not (SHARED / "aaf").is_dir(), reason="../shared/datasets/aaf "
                                  "not present")


def _folder(tmp_path: Path, header: str, rows: list[str]) -> Path:
    (tmp_path / "faces").mkdir()
    (tmp_path / "labels.csv").write_text("\n".join([header, *rows]) + "\n")
    return tmp_path


@pytest.mark.parametrize("header, rows, ages", [
    ("file,age,gender,split", ["a.jpg,4,female,train", "b.jpg,15,male,val"], [4.0, 15.0]),
    ("file,identity,gender,split", ["a.jpg,X,female,train", "b.jpg,Y,male,val"], [None, None]),
])
def test_both_folder_layouts_load(tmp_path, header, rows, ages):
    data = load_wild(_folder(tmp_path, header, rows))
    assert [p.name for p in data.paths] == ["a.jpg", "b.jpg"]
    assert data.gender.tolist() == [1, 0]
    assert [None if np.isnan(a) else a for a in data.age] == ages
    assert load_wild(tmp_path, "val").gender.tolist() == [0]


def test_bad_rows_are_skipped_and_an_empty_split_is_one_clear_error(tmp_path):
    folder = _folder(tmp_path, "file,age,gender,split",
                     ["a.jpg,4,female,train", "b.jpg,x,male,train", "c.jpg,9,robot,train"])
    assert len(load_wild(folder).paths) == 1
    with pytest.raises(DatasetError, match="no faces for split val"):
        load_wild(folder, "val")
    with pytest.raises(DatasetError, match="labels.csv"):
        load_wild(tmp_path / "missing")


@pytest.mark.parametrize("age, group", [
    (0, "0-2"), (2.99, "0-2"), (3, "3-9"), (9.6, "3-9"), (10, "10-19"), (19.9, "10-19"),
    (20, "20-29"), (45, "40-49"), (69.9, "60-69"), (70, "70+"), (103, "70+"),
])
def test_the_nine_age_groups_of_in_the_wild_benchmarks(age, group):
    assert AGE_GROUPS9[int(age_group9(np.array([age]))[0])] == group


def test_age_group_accuracy_counts_a_prediction_right_only_inside_the_true_group():
    truth = np.array([2, 25, 25, 71])
    predicted = np.array([2.9, 29.5, 30.0, 95.0])
    assert age_group9_accuracy(truth, predicted) == 0.75


def test_gender_by_band_counts_each_band():
    truth = np.array([1, 1, 0, 0, 1])
    pred = np.array([1, 0, 0, 0, 0])
    ages = np.array([1.0, 2.0, 30.0, 40.0, 35.0])
    out = gender_by_band(truth, pred, ages)
    assert out == {"0-2": {"n": 2, "gender_accuracy": 0.5},
                   "20+": {"n": 3, "gender_accuracy": 0.6667}}
    assert age_band(float("nan")) is None and age_band(12.9) == "7-12"


def _frames(n: int = 40) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(CLIP))
    frames = []
    while len(frames) < n:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def faces_and_marks() -> tuple[list[np.ndarray], list[np.ndarray]]:
    from audience.ingest.detect import YuNetDetector

    det = YuNetDetector(work_width=1280)
    imgs, marks = [], []
    for frame in _frames():
        for f in det.detect(frame):
            imgs.append(frame)
            marks.append(f.landmarks)
    assert imgs, "the bundled clip has faces"
    return imgs, marks


@pytest.mark.parametrize("min_age, heads", [(0.0, "gender"), (100.0, "gender"),
                                            (100.0, "age,gender")])
def test_the_gender_rule_withholds_gender_under_the_age(faces_and_marks, min_age, heads):
    imgs, marks = faces_and_marks
    a = FaceAnalyzer(AnalyzerConfig(gender_min_age=min_age), AttributePolicy.from_names(heads))
    out = a.analyze(imgs, marks)
    if min_age == 0:
        assert all(f.gender is not None for f in out)
    else:  # nobody in the clip is 100 years old: every gender withheld, age only where asked for
        assert all(f.gender is None and f.gender_score is None for f in out)
    assert all((f.age is not None) == ("age" in heads) for f in out)


def test_the_manifest_sets_the_rule_and_the_config_overrides_it(tmp_path, faces_and_marks):
    manifest = json.loads(DEFAULT_MANIFEST.read_text())
    manifest["gender_min_age"] = 200
    shutil.copy(DEFAULT_MANIFEST.parent / manifest["file"], tmp_path / manifest["file"])
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest))
    imgs, marks = faces_and_marks
    strict = FaceAnalyzer(AnalyzerConfig(weights=str(path)), AttributePolicy.from_names("gender"))
    assert strict.gender_min_age == 200
    assert all(f.gender is None for f in strict.analyze(imgs[:3], marks[:3]))
    off = FaceAnalyzer(AnalyzerConfig(weights=str(path), gender_min_age=0),
                       AttributePolicy.from_names("gender"))
    assert all(f.gender is not None for f in off.analyze(imgs[:3], marks[:3]))


def _track(n: int) -> Track:
    t = Track(store_id="s", camera_id="c", track_id="t", started_at=0.0, ended_at=5.0,
              n_detections=n)
    for _ in range(n):
        t.faces.append(Face(box=np.zeros(4, np.float32), landmarks=np.zeros((5, 2), np.float32),
                            score=0.9, quality=1.0))
    return t


@pytest.mark.parametrize("ages, genders, min_age, expected", [
    ([30.0, 32.0], ["female", "female"], 13.0, "female"),  # an adult keeps the gender
    ([8.0, 9.0], ["female", "female"], 13.0, None),  # a child is unknown
    ([12.0, 16.0], [None, "male"], 13.0, "male"),  # only the crops that carry a gender
    ([8.0, 9.0], ["female", "female"], 0.0, "female"),  # the rule off
])
def test_a_visit_under_the_age_has_no_gender(ages, genders, min_age, expected):
    attrs = [FaceAttributes(age=a, gender=g, gender_score=None if g is None else 0.9)
             for a, g in zip(ages, genders, strict=True)]
    visit = aggregate(_track(len(attrs)), attrs, "m", gender_min_age=min_age)
    assert visit.gender == expected
    assert (visit.gender_score is None) == (expected is None)


@needs_shared
def test_aaf_and_lfw_faces_are_found_by_the_camera_detector():
    """A sample of each shared folder: nearly every face is found and aligned."""
    from audience.models.wild import WildData, wild_crops

    for name in ("aaf", "lfw"):
        data = load_wild(SHARED / name, "val")
        sample = data.take(np.arange(0, len(data.paths), max(len(data.paths) // 25, 1)))
        crops, found = wild_crops(WildData(sample.name, sample.paths, sample.gender, sample.age,
                                           sample.split), 48)
        assert found.mean() > 0.9, (name, found.mean())
        assert crops.shape[1:] == (48, 48, 3) and crops[found].std() > 10


@pytest.mark.parametrize("accuracies, expected", [
    ({"0-2": 0.52, "3-6": 0.7, "7-12": 0.83, "13-19": 0.9, "20+": 0.95}, 7.0),
    ({"0-2": 0.85, "3-6": 0.9, "20+": 0.95}, 0.0),  # nothing to withhold
    ({"3-6": 0.7, "13-19": 0.81}, 13.0),  # a band with no faces is skipped
    ({"0-2": 0.5, "20+": 0.7}, 20.0),  # never above the adult band
])
def test_the_rule_starts_at_the_first_band_that_reaches_the_floor(accuracies, expected):
    from audience.models.gender_rule import choose_min_age

    by_band = {name: {"n": 10, "gender_accuracy": acc} for name, acc in accuracies.items()}
    assert choose_min_age(by_band, floor=0.8) == expected
