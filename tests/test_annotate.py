"""Annotated output (opt-in): `audience analyze --annotate` and `audience run --annotate`."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from audience.cli import app
from audience.ingest.annotate import annotate_frame
from audience.ingest.camera import CameraStage
from audience.ingest.config import CameraConfig

CLIP = Path(__file__).resolve().parents[1] / "ingest" / "assets" / \
    "face-demographics-walking-and-pause.gif"


def _invoke(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, [str(a) for a in args])
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Frames 5 and 10 of the bundled clip as PNG files."""
    out = tmp_path_factory.mktemp("frames")
    cap = cv2.VideoCapture(str(CLIP))
    paths = []
    for i in range(11):
        ok, img = cap.read()
        assert ok
        if i in (5, 10):
            paths.append(out / f"frame{i}.png")
            cv2.imwrite(str(paths[-1]), img)
    cap.release()
    return paths


def test_analyze_annotate_writes_a_same_size_png(frames: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "annotated.png"
    code, output = _invoke("analyze", frames[1], "--annotate", out)
    assert code == 0, output
    assert output.count("face ") == 3
    src, ann = cv2.imread(str(frames[1])), cv2.imread(str(out))
    assert ann.shape == src.shape
    changed = np.any(ann != src, axis=2)
    assert 0.005 < changed.mean() < 0.2  # boxes and captions, not a repainted frame


def test_analyze_annotate_a_folder_for_several_images(frames: list[Path], tmp_path: Path) -> None:
    code, output = _invoke("analyze", *frames, "--annotate", tmp_path / "ann")
    assert code == 0, output
    assert sorted(p.name for p in (tmp_path / "ann").iterdir()) == [
        "frame10-annotated.png", "frame5-annotated.png"]


@pytest.mark.parametrize(("target", "message"), [
    ("one.png", "pass a folder"),  # two images, one file
    ("INPUT", "would overwrite the input"),
])
def test_analyze_annotate_refuses(frames: list[Path], tmp_path: Path, target: str,
                                  message: str) -> None:
    args = [frames[0]] if target == "INPUT" else frames
    out = frames[0] if target == "INPUT" else tmp_path / target
    before = frames[0].read_bytes()
    code, output = _invoke("analyze", *args, "--annotate", out)
    assert code == 2 and message in output
    assert frames[0].read_bytes() == before


@pytest.mark.slow
def test_run_annotate_writes_the_analysed_frames(tmp_path: Path) -> None:
    video = tmp_path / "run.mp4"
    code, output = _invoke("run", "--source", CLIP, "--db", f"sqlite:///{tmp_path / 'a.db'}",
                           "--no-progress", "--annotate", video)
    assert code == 0, output
    assert "3 visits stored" in output
    cap = cv2.VideoCapture(str(video))
    n, size = 0, None
    while True:
        ok, img = cap.read()
        if not ok:
            break
        n, size = n + 1, img.shape
    cap.release()
    assert n == 17 and size == (270, 480, 3)  # every analysed frame (5 fps of the clip)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.db", "run.mp4"]


def test_run_annotate_needs_a_video_suffix(tmp_path: Path) -> None:
    code, output = _invoke("run", "--source", CLIP, "--db", f"sqlite:///{tmp_path / 'a.db'}",
                           "--annotate", tmp_path / "run.gif")
    assert code == 2 and ".mp4 or .avi" in output


def test_frame_annotation_draws_masks_and_counts() -> None:
    mask = [(300.0, 200.0), (479.0, 200.0), (479.0, 269.0), (300.0, 269.0)]
    stage = CameraStage(CameraConfig(exclusion_masks=[mask]))
    frame = np.full((270, 480, 3), 128, np.uint8)
    out = annotate_frame(stage, frame, [])
    assert out.shape == frame.shape and np.array_equal(frame, np.full_like(frame, 128))
    assert not np.array_equal(out[230, 400], frame[230, 400])  # inside the mask: tinted
    assert np.array_equal(out[150, 200], frame[150, 200])  # elsewhere: untouched
    assert not np.array_equal(out[5:40, 5:60], frame[5:40, 5:60])  # the counts panel


def test_analyze_annotate_same_names_get_unique_outputs(frames: list[Path],
                                                         tmp_path: Path) -> None:
    """Two inputs called frame.png (from two folders): two annotated files, none overwritten."""
    inputs = []
    for i, src in enumerate(frames):
        (tmp_path / f"in{i}").mkdir()
        inputs.append(tmp_path / f"in{i}" / "frame.png")
        inputs[-1].write_bytes(src.read_bytes())
    code, output = _invoke("analyze", *inputs, "--annotate", tmp_path / "ann")
    assert code == 0, output
    outs = sorted((tmp_path / "ann").iterdir())
    assert [p.name for p in outs] == ["frame-2-annotated.png", "frame-annotated.png"]
    first, second = (cv2.imread(str(tmp_path / "ann" / n)) for n in
                     ("frame-annotated.png", "frame-2-annotated.png"))
    assert np.any(first != second)  # each its own input


def _clip_folder(folder: Path, resize_every_other: bool) -> Path:
    folder.mkdir()
    cap = cv2.VideoCapture(str(CLIP))
    i = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        if resize_every_other and i % 2:
            img = cv2.resize(img, (img.shape[1] * 5 // 4, img.shape[0] * 5 // 4))
        cv2.imwrite(str(folder / f"{i:04d}.png"), img)
        i += 1
    cap.release()
    return folder


@pytest.mark.slow
def test_frame_size_change_is_rescaled_tracks_continue_every_frame_kept(
        tmp_path: Path) -> None:
    same = _clip_folder(tmp_path / "same", False)
    mixed = _clip_folder(tmp_path / "mixed", True)
    n_frames = len(list(mixed.iterdir()))
    code, reference = _invoke("run", "--source", same, "--db",
                              f"sqlite:///{tmp_path / 'a.db'}", "--no-progress")
    assert code == 0, reference
    video = tmp_path / "mixed.avi"
    code, output = _invoke("run", "--source", mixed, "--db", f"sqlite:///{tmp_path / 'b.db'}",
                           "--no-progress", "--annotate", video)
    assert code == 0, output
    stored = re.compile(r"(\d+) visits stored")
    assert stored.findall(output) == stored.findall(reference) != []  # as many visits
    cap = cv2.VideoCapture(str(video))
    kept = 0
    while cap.read()[0]:
        kept += 1
    cap.release()
    assert kept == n_frames
