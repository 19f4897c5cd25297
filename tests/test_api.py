"""The Python API: `from audience import analyze` on a frame of the bundled clip, and the batch
FaceAnalyzer through the package root."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import audience
from audience import AudienceError, FaceAnalyzer, FaceResult, analyze
from audience.core.result import KEYS

CLIP = Path(__file__).resolve().parents[1] / "ingest" / "assets" / \
    "face-demographics-walking-and-pause.gif"
HEADS = {"emotion": {"emotion", "emotion_scores"}, "age": {"age", "age_bracket"},
         "gender": {"gender", "gender_score"}, "ethnicity": {"ethnicity", "ethnicity_scores"}}


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    cap = cv2.VideoCapture(str(CLIP))
    for _ in range(10):  # frame 10: all three visitors in view
        ok, img = cap.read()
        assert ok
    cap.release()
    return img


def test_analyze_finds_the_three_faces_of_a_clip_frame(frame: np.ndarray) -> None:
    faces = analyze(frame)
    assert len(faces) == 3 and all(isinstance(f, FaceResult) for f in faces)
    for i, f in enumerate(faces):
        row = f.to_dict()
        assert tuple(row) == KEYS  # the keys `audience analyze --json` prints
        assert row["ethnicity"] is None and row["ethnicity_scores"] is None  # unless enabled
        assert row["face"] == i and row["source"] is None and 0 < row["score"] <= 1
        x1, y1, x2, y2 = f.box
        assert 0 <= x1 < x2 <= frame.shape[1] and 0 <= y1 < y2 <= frame.shape[0]
        assert f.attributes.gender in ("female", "male") and 0 < (f.attributes.age or 0) < 100
    areas = [f.area for f in faces]
    assert areas == sorted(areas, reverse=True)


@pytest.mark.parametrize(("attributes", "keys"), [
    ("emotion", {"emotion", "emotion_scores"}),
    ("age,gender", {"age", "age_bracket", "gender", "gender_score"}),
    (["gender", "ethnicity"], {"gender", "gender_score", "ethnicity", "ethnicity_scores"}),
])
def test_only_the_enabled_heads_are_returned(frame: np.ndarray, attributes: object,
                                              keys: set[str]) -> None:
    faces = analyze(frame, attributes)  # type: ignore[arg-type]
    assert faces
    for face in faces:
        row = face.to_dict()
        assert tuple(row) == KEYS
        filled = {k for head in HEADS.values() for k in head if row[k] is not None}
        assert filled == keys


def test_path_rgb_and_array_agree(frame: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), frame)
    by_path = analyze(path)
    by_rgb = analyze(frame[:, :, ::-1].copy(), rgb=True)
    assert [f.box for f in by_path] == [f.box for f in by_rgb] == \
        [f.box for f in analyze(frame)]
    assert {f.source for f in by_path} == {str(path)}


def test_no_face_is_an_empty_list() -> None:
    assert analyze(np.full((200, 300, 3), 127, np.uint8)) == []


@pytest.mark.parametrize("bad", [np.zeros((10, 10, 3), np.float32), np.zeros((4, 4, 2),
                                                                           np.uint8)])
def test_a_bad_array_is_an_input_error(bad: np.ndarray) -> None:
    with pytest.raises(AudienceError, match="8-bit"):
        analyze(bad)


def test_batch_analyzer_is_public(frame: np.ndarray) -> None:
    labels = FaceAnalyzer().analyze([frame[70:140, 190:260], frame[85:145, 75:125]])
    assert len(labels) == 2 and all(a.gender for a in labels)
    assert {"analyze", "FaceAnalyzer", "FaceResult", "__version__"} <= set(audience.__all__)
