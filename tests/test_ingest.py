"""Camera stage: sources, quality gates, tracker, and the end-to-end check on the bundled clip."""

from __future__ import annotations

import itertools
import logging
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from audience.core.face import Face
from audience.ingest.bench import bench_camera, clip_path
from audience.ingest.camera import CameraStage
from audience.ingest.config import CameraConfig, QualityConfig, TrackerConfig
from audience.ingest.detect import YuNetDetector
from audience.ingest.quality import in_masks, mask_contours, quality_score, sharpness, yaw
from audience.ingest.sources import (
    ImageFolderSource,
    LiveSource,
    PillowGifCapture,
    SourceError,
    VideoFileSource,
    _Sampler,
    mask_credentials,
    open_source,
)
from audience.ingest.tracker import Tracker, iou

CLIP = clip_path()
CLIP_FRAMES, CLIP_SECONDS = 41, 3.33
PASSWORD = "s3cr3t-Pa55"


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True, scope="module")
def _one_opencv_thread():
    """Keep OpenCV on one core in these tests (the machine may be busy training)."""
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(previous)


def frame(h: int = 48, w: int = 64, value: int = 128) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


class FakeCapture:
    """Scripted ``cv2.VideoCapture``: an array is a good frame, None a frame that fails to
    decode (grab ok, retrieve fails), False a failed grab. Exhausted: every grab fails."""

    def __init__(self, script: list[np.ndarray | None | bool] | None = None,
                 opened: bool = True, fps: float = 10.0) -> None:
        self.script = list(script or [])
        self.opened = opened
        self.fps = fps
        self.current: np.ndarray | None = None
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802
        return self.opened

    def grab(self) -> bool:
        if not self.opened or not self.script:
            return False
        item = self.script.pop(0)
        if item is False:
            return False
        self.current = item  # type: ignore[assignment]
        return True

    def retrieve(self) -> tuple[bool, np.ndarray | None]:
        return self.current is not None, self.current

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FPS: self.fps, cv2.CAP_PROP_FRAME_COUNT: 0.0}.get(prop, 0.0)

    def release(self) -> None:
        self.released = True


class Factory:
    """Hands out scripted captures in order (closed ones after the list runs out)."""

    def __init__(self, *captures: FakeCapture) -> None:
        self.captures = list(captures)
        self.targets: list[str | int] = []

    def __call__(self, target: str | int) -> FakeCapture:
        self.targets.append(target)
        return self.captures.pop(0) if self.captures else FakeCapture(opened=False)


def ticking_clock(step: float):
    counter = itertools.count()
    return lambda: 1_000.0 + next(counter) * step


def make_face(x: float, y: float, side: float = 60.0, turn: float = 0.0) -> Face:
    """A face box with landmarks placed like a real face; ``turn`` moves the nose sideways
    by ``turn`` half eye distances (so yaw() == turn, capped at 1)."""
    box = np.array([x, y, x + side, y + side], np.float32)
    s = side
    nose_x = x + 0.5 * s + turn * 0.19 * s
    marks = np.array([[x + 0.31 * s, y + 0.4 * s], [x + 0.69 * s, y + 0.4 * s],
                      [nose_x, y + 0.6 * s], [x + 0.35 * s, y + 0.78 * s],
                      [x + 0.65 * s, y + 0.78 * s]], np.float32)
    return Face(box=box, landmarks=marks, score=0.9)


class FakeDetector:
    """Returns copies of fixed faces, whatever the frame."""

    def __init__(self, faces: list[Face]) -> None:
        self.faces = faces

    def detect(self, frame: np.ndarray) -> list[Face]:
        return [Face(f.box.copy(), f.landmarks.copy(), f.score) for f in self.faces]


def textured(h: int = 480, w: int = 640, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- sources


@pytest.mark.parametrize("spec, message", [
    ("missing/video.mp4", "not found"),
    ("ftp://cam.example/stream", "unsupported source scheme"),
    ("rtmp://cam.example/live", "unsupported source scheme"),
    (f"ftp://admin:{PASSWORD}@cam/x", "unsupported source scheme"),
    ("", "no camera source"),
    ("   ", "no camera source"),
])
def test_bad_specs_raise_source_error(spec: str, message: str, tmp_path: Path) -> None:
    spec = str(tmp_path / spec) if spec.startswith("missing") else spec
    with pytest.raises(SourceError, match=message) as err:
        open_source(spec, 5.0, progress=False)
    text = str(err.value)
    assert "\n" not in text and PASSWORD not in text


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 100])
def test_unreadable_video_file_raises(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(SourceError, match="cannot read video file"):
        open_source(path, 5.0, progress=False)


def test_empty_image_folder_raises(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(SourceError, match="no image files"):
        open_source(tmp_path, 5.0)


@pytest.mark.parametrize("spec, masked", [
    (f"rtsp://admin:{PASSWORD}@10.0.0.5:554/stream1", "rtsp://***@10.0.0.5:554/stream1"),
    (f"rtsp://admin:p@ss{PASSWORD}@10.0.0.5/s", "rtsp://***@10.0.0.5/s"),
    (f"https://cam.local/mjpg?user=admin&password={PASSWORD}",
     "https://cam.local/mjpg?user=***&password=***"),
    (f"http://cam.local/video?token={PASSWORD}&res=hd", "http://cam.local/video?token=***&res=hd"),
    ("rtsp://10.0.0.5/stream", "rtsp://10.0.0.5/stream"),
    ("/videos/store.mp4", "/videos/store.mp4"),
])
def test_mask_credentials(spec: str, masked: str) -> None:
    assert mask_credentials(spec) == masked


def test_image_folder_gray_bgr_rgba_and_corrupt(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    cv2.imwrite(str(tmp_path / "frame1.png"), np.full((30, 40), 200, np.uint8))  # gray
    cv2.imwrite(str(tmp_path / "frame2.jpg"), frame(30, 40, 90))  # BGR
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[..., 2], rgba[..., 3] = 255, 255  # opaque red, BGRA order
    cv2.imwrite(str(tmp_path / "frame3.png"), rgba)
    (tmp_path / "frame4.png").write_bytes(b"\x89PNG garbage")  # corrupt
    cv2.imwrite(str(tmp_path / "frame10.png"), (np.ones((30, 40), np.uint16) * 65535))  # 16 bit
    (tmp_path / "readme.txt").write_text("ignored")

    source = open_source(tmp_path, 4.0, start_time=100.0, progress=False)
    assert isinstance(source, ImageFolderSource)
    assert [p.name for p in source.files] == [
        "frame1.png", "frame2.jpg", "frame3.png", "frame4.png", "frame10.png"]  # natural order
    with caplog.at_level(logging.WARNING, logger="audience.ingest.sources"):
        out = list(source)
    assert [t for t, _ in out] == [100.0, 100.25, 100.5, 101.0]  # slot of the corrupt one kept
    for _, img in out:
        assert img.dtype == np.uint8 and img.shape == (30, 40, 3)
    assert out[0][1][0, 0].tolist() == [200, 200, 200]
    assert out[2][1][0, 0].tolist() == [0, 0, 255]
    assert out[3][1][0, 0].tolist() == [255, 255, 255]
    assert source.skipped == 1
    assert "skipped 1 corrupt" in caplog.text


def test_video_file_skips_corrupt_frames(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"placeholder: the fake capture does the decoding")
    f = frame()
    script: list[np.ndarray | None | bool] = [f, f, False, f, None, f, np.zeros((0, 0, 3)), f]
    factory = Factory(FakeCapture(), FakeCapture(script))  # 1st: open check at open_source
    source = open_source(path, 30.0, start_time=50.0, progress=False, capture_factory=factory)
    assert isinstance(source, VideoFileSource)
    with caplog.at_level(logging.WARNING, logger="audience.ingest.sources"):
        out = list(source)
    # Decoder gives no position here: timestamps come from frame index / native fps (10).
    assert [round(t - 50.0, 2) for t, _ in out] == [0.0, 0.1, 0.3, 0.5, 0.7]
    assert source.skipped == 3  # failed grab, failed decode, empty frame; not the end of file
    assert "skipped 3 corrupt" in caplog.text


def test_video_file_with_no_decodable_frame_raises(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    path.write_bytes(b"x")
    factory = Factory(FakeCapture(), FakeCapture([None, None]))
    with pytest.raises(SourceError, match="no frames could be decoded"):
        list(open_source(path, 5.0, progress=False, capture_factory=factory))


def test_real_avi_file_timestamps_are_video_time(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    assert writer.isOpened()
    for i in range(20):
        writer.write(frame(value=i * 10))
    writer.release()
    out = list(open_source(path, 5.0, start_time=1_000.0, progress=False))
    assert [round(t - 1_000.0, 3) for t, _ in out] == [round(0.2 * i, 3) for i in range(10)]


@pytest.mark.parametrize("fps, expected", [(1.0, 4), (2.5, 9), (5.0, 17), (12.5, 41), (30.0, 41)])
def test_fps_sampling_on_clip(fps: float, expected: int) -> None:
    out = list(open_source(CLIP, fps, start_time=0.0, progress=False))
    times = [t for t, _ in out]
    assert len(out) == expected
    assert times[0] == 0.0 and times == sorted(times)
    assert all(b - a > 1 / fps * 0.5 for a, b in itertools.pairwise(times))
    assert out[0][1].shape == (270, 480, 3) and out[0][1].dtype == np.uint8


@pytest.mark.parametrize("source_fps, fps, seconds, expected", [
    (30.0, 5.0, 2.0, 10), (25.0, 10.0, 1.0, 10), (12.5, 5.0, 4.0, 20), (4.0, 5.0, 2.0, 8)])
def test_sampler_drops_by_timestamp(source_fps: float, fps: float, seconds: float,
                                    expected: int) -> None:
    sampler = _Sampler(fps)
    n = int(round(seconds * source_fps))
    assert sum(sampler.want(1e9 + i / source_fps) for i in range(n)) == expected


def test_default_start_time_is_now() -> None:
    before = time.time()
    first_t, _ = next(iter(open_source(CLIP, 5.0, progress=False)))
    assert before <= first_t <= time.time()


def test_gif_read_by_opencv_and_pillow_agree() -> None:
    cv = list(open_source(CLIP, 60.0, start_time=0.0, progress=False))
    pil = list(open_source(CLIP, 60.0, start_time=0.0, progress=False,
                           capture_factory=PillowGifCapture))
    assert len(cv) == len(pil) == CLIP_FRAMES
    assert [round(t, 3) for t, _ in cv] == [round(t, 3) for t, _ in pil]
    assert pytest.approx(pil[-1][0], abs=0.01) == CLIP_SECONDS
    assert max(np.abs(a.astype(int) - b.astype(int)).mean()
               for (_, a), (_, b) in zip(cv, pil, strict=True)) < 2.0


def test_progress_bar_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    list(open_source(CLIP, 5.0, progress=True))
    captured = capsys.readouterr()
    assert captured.out == "" and "frame" in captured.err
    list(open_source(CLIP, 5.0, progress=False))
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- live sources


def test_reconnect_backoff_doubles_caps_and_gives_up(caplog: pytest.LogCaptureFixture) -> None:
    sleeps: list[float] = []
    url = f"rtsp://admin:{PASSWORD}@10.0.0.5/stream"
    source = open_source(url, 5.0, reconnect_max_s=5.0, reconnect_attempts=5,
                         sleep=sleeps.append, capture_factory=Factory())
    assert isinstance(source, LiveSource) and source.live
    with caplog.at_level(logging.WARNING, logger="audience.ingest.sources"), \
            pytest.raises(SourceError, match="after 5 reconnect attempts") as err:
        list(source)
    assert sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert "reconnecting in 4 s (attempt 3)" in caplog.text
    assert "rtsp://***@10.0.0.5/stream" in caplog.text
    assert PASSWORD not in caplog.text and PASSWORD not in str(err.value)


def test_reconnect_resets_after_good_frames(caplog: pytest.LogCaptureFixture) -> None:
    sleeps: list[float] = []
    f = frame()
    factory = Factory(FakeCapture(opened=False), FakeCapture([f, f, f]),
                      FakeCapture([f]), FakeCapture(opened=False))
    source = open_source("http://cam.local/video.mjpg", 5.0, reconnect_attempts=2,
                         sleep=sleeps.append, clock=ticking_clock(1.0), capture_factory=factory)
    got = []
    with caplog.at_level(logging.WARNING, logger="audience.ingest.sources"), \
            pytest.raises(SourceError):
        for t, img in source:
            got.append(t)
            assert img.shape == f.shape
    assert len(got) == 4
    # open fails (1 s); 3 frames then drop: counter reset (1 s); 1 frame, drop (1 s);
    # open fails (2 s); open fails again: 3rd attempt > 2 allowed -> gives up.
    assert sleeps == [1.0, 1.0, 1.0, 2.0]
    assert "cannot be opened; reconnecting in 1 s (attempt 1)" in caplog.text
    assert "stream http://cam.local/video.mjpg dropped; reconnecting in 2 s (attempt 2)" \
        in caplog.text


def test_live_never_gives_up_by_default() -> None:
    sleeps: list[float] = []
    f = frame()
    factory = Factory(*[FakeCapture(opened=False)] * 12, FakeCapture([f]))
    source = open_source("rtsps://cam.local/s", 5.0, reconnect_max_s=30.0, sleep=sleeps.append,
                         clock=ticking_clock(1.0), capture_factory=factory)
    t, _ = next(iter(source))
    assert sleeps == [1, 2, 4, 8, 16, 30, 30, 30, 30, 30, 30, 30]


def test_live_sampling_uses_the_clock() -> None:
    f = frame()
    factory = Factory(FakeCapture([f] * 60))
    source = open_source("rtsp://cam/s", 5.0, reconnect_attempts=1, sleep=lambda s: None,
                         clock=ticking_clock(1 / 30), capture_factory=factory)
    with pytest.raises(SourceError):
        out = []
        for item in source:
            out.append(item)
    assert len(out) == 10  # 2 s of a 30 fps stream at 5 fps


def test_webcam_index() -> None:
    factory = Factory(FakeCapture([frame()]))
    source = open_source("0", 5.0, reconnect_attempts=1, sleep=lambda s: None,
                         capture_factory=factory)
    assert source.kind == "webcam" and source.live
    assert len(list(itertools.islice(source, 1))) == 1
    assert factory.targets == [0]


# --------------------------------------------------------------------------- quality


@pytest.mark.parametrize("turn, expected", [(0.0, 0.0), (0.3, 0.3), (0.7, 0.7), (1.0, 1.0),
                                             (2.5, 1.0)])
def test_yaw_from_landmarks(turn: float, expected: float) -> None:
    # make_face's turn moves the nose by turn * half the eye distance: yaw == turn, capped.
    assert yaw(make_face(10, 10, turn=turn).landmarks) == pytest.approx(expected, abs=1e-5)
    assert yaw(make_face(10, 10, turn=-turn).landmarks) == pytest.approx(expected, abs=1e-5)


def test_sharpness_and_quality_ranking() -> None:
    sharp_crop = textured(48, 48)[..., 0]
    blurred = cv2.GaussianBlur(sharp_crop, (0, 0), 3)
    assert sharpness(sharp_crop) > 10 * sharpness(blurred)
    big, small, turned, blurry = (make_face(0, 0, 120), make_face(0, 0, 30),
                                  make_face(0, 0, 120, turn=2.0), make_face(0, 0, 120))
    for f in (big, small, turned):
        f.crop = sharp_crop
    blurry.crop = blurred
    scores = {name: quality_score(f) for name, f in
              [("big", big), ("small", small), ("turned", turned), ("blurry", blurry)]}
    assert scores["big"] == max(scores.values())
    assert all(0.0 <= s <= 1.0 for s in scores.values())


@pytest.mark.parametrize("x, y, inside", [(50, 50, True), (150, 150, False), (95, 10, True)])
def test_in_masks(x: float, y: float, inside: bool) -> None:
    contours = mask_contours([[(0, 0), (100, 0), (100, 100), (0, 100)]])
    face = make_face(x - 10, y - 10, side=20)
    assert in_masks(face, contours) is inside
    assert in_masks(face, []) is False


def test_masked_and_below_floor_faces_are_dropped_small_faces_counted_without_crop() -> None:
    """Count first, label what you can: a 12 px face is a visitor without a crop;
    only a face under the detector's floor (10 working px; a 640-wide frame is detected at
    1.5x, so 6.7 frame px) or inside a mask is dropped."""
    staff, small, speck, visitor = (make_face(20, 20, 80), make_face(400, 20, 12),
                                    make_face(500, 100, 5), make_face(300, 250, 80))
    config = CameraConfig(exclusion_masks=[[(0, 0), (200, 0), (200, 200), (0, 200)]],
                          quality=QualityConfig(min_face_px=24, min_sharpness=0.0),
                          tracker=TrackerConfig(min_hits=1))
    stage = CameraStage(config, detector=FakeDetector([staff, small, speck, visitor]))
    tracks = list(stage.run((float(t), textured(seed=t)) for t in range(3)))
    assert len(tracks) == 2 and all(t.n_detections == 3 for t in tracks)
    [labelled] = [t for t in tracks if t.faces]
    assert all(np.allclose(f.box, visitor.box) for f in labelled.faces)
    c = stage.counters
    assert (c.frames, c.faces, c.masked, c.small, c.undersized, c.tracks, c.uncropped) == (
        3, 12, 3, 3, 3, 2, 1)


def test_blurred_and_turned_faces_keep_the_track_but_give_no_crop() -> None:
    flat = np.full((480, 640, 3), 120, np.uint8)  # no edges at all: sharpness 0
    config = CameraConfig(tracker=TrackerConfig(min_hits=2))
    blurred = CameraStage(config, detector=FakeDetector([make_face(100, 100, 80)]))
    [track] = list(blurred.run((t * 0.2, flat) for t in range(4)))
    assert track.n_detections == 4 and track.faces == [] and blurred.counters.blurry == 4

    turned = CameraStage(config, detector=FakeDetector([make_face(100, 100, 80, turn=4.0)]))
    [track] = list(turned.run((t * 0.2, textured(seed=t)) for t in range(4)))
    assert track.faces == [] and turned.counters.turned == 4


# --------------------------------------------------------------------------- tracker


def tracker(**overrides: float) -> Tracker:
    return Tracker(TrackerConfig(**overrides), "cam-1", "store-1")


def test_iou() -> None:
    a = np.array([0, 0, 10, 10], np.float32)
    assert iou(a, a) == 1.0
    assert iou(a, a + np.float32(20)) == 0.0
    assert iou(a, np.array([5, 0, 15, 10], np.float32)) == pytest.approx(1 / 3)


@pytest.mark.parametrize("sizes", [(60, 60), (50, 70)])
def test_two_faces_crossing_paths_stay_two_tracks(sizes: tuple[int, int]) -> None:
    """A walks left to right and down, B right to left and down: their boxes meet mid-way."""
    tr = tracker(min_hits=3, max_unseen_s=1.0)
    owner: dict[str, set[str]] = {"A": set(), "B": set()}
    for i in range(21):
        a = make_face(20 + 20 * i, 100 + 3 * i, sizes[0])
        b = make_face(420 - 20 * i, 100 + 5 * i, sizes[1])
        tr.update([b, a] if i % 2 else [a, b], 0.2 * i)
        owner["A"].add(a.track_id or "")
        owner["B"].add(b.track_id or "")
    tracks = tr.flush()
    assert len(tracks) == 2
    assert len(owner["A"]) == len(owner["B"]) == 1 and owner["A"] != owner["B"]
    assert all(t.n_detections == 21 for t in tracks)


@pytest.mark.parametrize("gap, n_tracks", [(1.0, 1), (1.4, 1), (1.6, 2), (5.0, 2)])
def test_gap_longer_than_max_unseen_splits(gap: float, n_tracks: int) -> None:
    tr = tracker(max_unseen_s=1.5, min_hits=1)
    ended = []
    times = [0.0, 0.2, 0.4, 0.4 + gap, 0.6 + gap]
    for t in times:
        ended += tr.update([make_face(100, 100)], t)
    ended += tr.flush()
    assert len(ended) == n_tracks
    assert sum(t.n_detections for t in ended) == len(times)
    if n_tracks == 2:
        assert ended[0].ended_at == pytest.approx(0.4)
        assert ended[1].started_at == pytest.approx(0.4 + gap)


def test_track_ends_when_unseen_for_more_than_t() -> None:
    tr = tracker(max_unseen_s=1.0, min_hits=1)
    assert tr.update([make_face(0, 0)], 10.0) == []
    assert tr.update([], 11.0) == []  # exactly T: not yet
    [track] = tr.update([], 11.01)
    assert (track.started_at, track.ended_at, track.dwell_s) == (10.0, 10.0, 0.0)
    assert tr.active == 0 and tr.flush() == []


@pytest.mark.parametrize("detections, min_hits, emitted", [
    (1, 3, 0), (2, 3, 0), (3, 3, 1), (10, 3, 1), (1, 1, 1)])
def test_min_hits(detections: int, min_hits: int, emitted: int) -> None:
    hooked = []
    tr = Tracker(TrackerConfig(min_hits=min_hits), "cam-9", "store-9", on_expire=hooked.append)
    for i in range(detections):
        tr.update([make_face(100 + i, 100)], i * 0.2)
    tracks = tr.flush()
    assert len(tracks) == emitted and hooked == tracks
    assert tr.discarded == 1 - emitted
    for t in tracks:
        assert (t.camera_id, t.store_id, t.n_detections) == ("cam-9", "store-9", detections)


def test_best_k_faces_by_quality_and_random_ids() -> None:
    tr = tracker(best_k=3, min_hits=1)
    crop = np.zeros((48, 48), np.uint8)
    qualities = [0.2, 0.9, 0.1, 0.5, 0.7, 0.3]
    for i, q in enumerate(qualities):
        face = make_face(100 + 2 * i, 100)
        face.quality, face.crop = q, crop
        tr.update([face], 100.0 + i * 0.2)
    [track] = tr.flush()
    assert [f.quality for f in track.faces] == [0.9, 0.7, 0.5]
    assert all(f.track_id == track.track_id and f.crop is crop for f in track.faces)
    assert re.fullmatch(r"[0-9a-f]{32}", track.track_id)
    other = tracker(min_hits=1)
    other.update([make_face(100, 100)], 100.0)
    assert other.flush()[0].track_id != track.track_id  # same input, unrelated id


def test_fast_face_continues_by_centre_distance() -> None:
    """Boxes that no longer overlap (fast walker, low fps) still continue the track."""
    tr = tracker(min_hits=1, iou_threshold=0.2, max_centre_shift=1.0)
    for i in range(5):
        tr.update([make_face(100 + 45 * i, 100, 50)], i * 0.5)
    assert len(tr.flush()) == 1
    far = tracker(min_hits=1, max_centre_shift=1.0)
    for i in range(3):
        far.update([make_face(100 + 200 * i, 100, 50)], i * 0.5)  # 4 box sizes per frame
    assert len(far.flush()) == 3


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("fps, reader", [
    (None, None),  # the defaults: what production runs
    (2.0, None), (12.5, None),
    (None, PillowGifCapture),
])
def test_bundled_clip_gives_exactly_three_tracks(fps: float | None, reader,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    config = CameraConfig() if fps is None else CameraConfig(fps=fps)
    stage = CameraStage(config)
    source = open_source(CLIP, config.fps, start_time=1_700_000_000.0, progress=False,
                         capture_factory=reader)
    with caplog.at_level(logging.INFO, logger="audience.ingest.camera"):
        tracks = list(stage.run(source))
    assert len(tracks) == 3
    centres = []
    for track in tracks:
        assert 1 <= len(track.faces) <= config.tracker.best_k
        for face in track.faces:
            assert face.crop is not None and face.crop.shape == (48, 48, 3)  # BGR
            assert face.crop.dtype == np.uint8
            assert face.track_id == track.track_id
        qualities = [f.quality for f in track.faces]
        assert qualities == sorted(qualities, reverse=True)
        assert 2.5 <= track.dwell_s <= CLIP_SECONDS + 0.01  # the 3 people stay in view throughout
        assert track.started_at >= 1_700_000_000.0
        centres.append(float(track.faces[0].box[[0, 2]].mean()))
    # woman left, man centre, woman right: one track each
    assert sorted(int(c // 160) for c in centres) == [0, 1, 2]
    assert len({t.track_id for t in tracks}) == 3
    [line] = [r.getMessage() for r in caplog.records if r.name == "audience.ingest.camera"]
    assert "3 tracks" in line and "array" not in line


class FlakyDetector:
    """YuNet that misses each face with probability ``p``: the defaults must absorb it."""

    def __init__(self, p: float, seed: int) -> None:
        self.inner = YuNetDetector()
        self.p = p
        self.rng = np.random.default_rng(seed)

    def detect(self, frame: np.ndarray) -> list[Face]:
        return [f for f in self.inner.detect(frame) if self.rng.random() >= self.p]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bundled_clip_survives_missed_detections(seed: int) -> None:
    config = CameraConfig()
    stage = CameraStage(config, detector=FlakyDetector(0.3, seed))
    tracks = list(stage.run(open_source(CLIP, config.fps, start_time=0.0, progress=False)))
    assert len(tracks) == 3
    assert all(t.dwell_s >= 2.0 and t.faces for t in tracks)


def test_bench_camera_reports_fps() -> None:
    result = bench_camera(seconds=0.3)
    assert set(result) == {"fps", "cpu_fps", "frames", "faces_per_frame", "resolution",
                           "threads", "work_width", "bodies", "bodies_per_frame"}
    assert result["resolution"] == "1280x720" and result["threads"] == 1
    assert result["frames"] >= 1 and result["fps"] > 0 and result["cpu_fps"] > 0
    assert result["faces_per_frame"] == pytest.approx(3.0, abs=0.5)
    assert result["bodies"] and result["bodies_per_frame"] == pytest.approx(3.0, abs=0.5)
