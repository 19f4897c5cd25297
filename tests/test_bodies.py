"""The person (body) detector: its shipped file is checked, and it finds the clip's people."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from audience.core.errors import WeightsError
from audience.core.weights import sha256
from audience.ingest import bodies
from audience.ingest.bench import clip_frames
from audience.ingest.bodies import MOVENET_SHA256, MoveNetDetector, input_size, movenet_path
from audience.ingest.config import BodiesConfig


def test_shipped_file_matches_its_recorded_checksum() -> None:
    assert sha256(movenet_path()) == MOVENET_SHA256
    licence = movenet_path().parent / "MOVENET_LICENSE.txt"
    assert "Apache License" in licence.read_text()


@pytest.mark.parametrize("damage, message", [
    ("missing", "not found: reinstall the package or restore the file"),
    ("altered", "does not match its recorded sha256"),
])
def test_a_missing_or_altered_file_is_one_line_error(tmp_path: Path, monkeypatch,
                                                      damage: str, message: str) -> None:
    copy = tmp_path / movenet_path().name
    if damage == "altered":
        shutil.copy(movenet_path(), copy)
        data = bytearray(copy.read_bytes())
        data[len(data) // 2] ^= 0xFF
        copy.write_bytes(bytes(data))
    monkeypatch.setattr(bodies, "movenet_path", lambda: copy)
    with pytest.raises(WeightsError) as err:
        MoveNetDetector()
    assert message in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_code == 2


@pytest.mark.parametrize("w, h, long_side, expected", [
    (1280, 720, 256, (0.2, 256, 160)),
    (480, 270, 256, (256 / 480, 256, 160)),
    (720, 1280, 256, (0.2, 160, 256)),
    (640, 640, 384, (0.6, 384, 384)),
])
def test_input_is_padded_to_multiples_of_32(w, h, long_side, expected) -> None:
    scale, pw, ph = input_size(w, h, long_side)
    assert (round(scale, 6), pw, ph) == (round(expected[0], 6), expected[1], expected[2])


def test_finds_the_three_people_of_the_bundled_clip_in_frame_pixels() -> None:
    cfg = BodiesConfig()
    det = MoveNetDetector(cfg.score_threshold, cfg.long_side)
    frame = clip_frames()[20]  # 1280x720
    found = det.detect(frame)
    assert len(found) == 3
    for body in found:
        x1, y1, x2, y2 = body.box
        assert 0 <= x1 < x2 <= 1280 and 0 <= y1 < y2 <= 720
        assert body.keypoints.shape == (17, 3)
        nose = body.keypoints[0]
        assert x1 - 10 <= nose[0] <= x2 + 10 and y1 - 10 <= nose[1] <= y2 + 10
    assert det.detect(np.zeros((720, 1280, 3), np.uint8)) == []


@pytest.mark.parametrize("field, value", [("long_side", 250), ("score_threshold", 1.5),
                                          ("unknown", 1)])
def test_config_is_strict(field: str, value: object) -> None:
    with pytest.raises(ValueError):
        BodiesConfig.model_validate({field: value})
