"""People, not only faces: face-body association, one visitor per person, attention."""

from __future__ import annotations

import numpy as np
import pytest

from audience.core.face import Face
from audience.ingest.attention import body_frontal, face_frontal, frontal, keypoint_yaw, pitch
from audience.ingest.bodies import Body
from audience.ingest.camera import CameraStage
from audience.ingest.config import AttentionConfig, CameraConfig
from audience.ingest.detect import UTK_MEAN_MARKS
from audience.ingest.people import associate, head_region, on_torso

CFG = AttentionConfig()


def body(x: float, y: float = 100.0, w: float = 100.0, h: float = 300.0, *, head: bool = True,
         turn: float = 0.0, score: float = 0.6) -> Body:
    """A standing person whose box starts at (x, y); keypoints of a head facing the camera
    (``turn`` moves the nose towards one eye: 0 frontal, 1 on the eye), or none."""
    kp = np.zeros((17, 3), np.float32)
    cx, eye_y = x + w / 2, y + 0.08 * h
    if head:
        kp[1] = (cx + 8, eye_y, 0.8)  # left eye: on the image's right when facing us
        kp[2] = (cx - 8, eye_y, 0.8)
        kp[0] = (cx + 8 * turn, eye_y + 8, 0.8)  # nose
        kp[3] = (cx + 16, eye_y + 2, 0.6)
        kp[4] = (cx - 16, eye_y + 2, 0.6)
    kp[5] = (cx + 30, y + 0.2 * h, 0.8)  # shoulders
    kp[6] = (cx - 30, y + 0.2 * h, 0.8)
    return Body(box=np.array([x, y, x + w, y + h], np.float32), keypoints=kp, score=score)


def face(cx: float, cy: float, side: float = 30.0, marks: np.ndarray | None = None) -> Face:
    box = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)
    if marks is None:  # the mean frontal face, scaled into the box
        marks = UTK_MEAN_MARKS / 200.0 * side + box[:2]
    return Face(box=box, landmarks=np.asarray(marks, np.float32), score=0.9)


# (case, faces (cx, cy), bodies (x), expected pairs (face, body))
ASSOCIATION = [
    ("face inside a body's head", [(150, 130)], [100], [(0, 0)]),
    ("face alone", [(600, 130)], [100], []),
    ("body alone", [], [100], []),
    ("two people overlapping", [(150, 130), (215, 130)], [100, 165], [(0, 0), (1, 1)]),
    ("a face between two bodies", [(240, 130)], [100, 330], []),
    ("two faces, one head: the nearer joins", [(150, 128), (175, 128)], [100], [(0, 0)]),
]


@pytest.mark.parametrize("case, faces, xs, expected", ASSOCIATION, ids=[c[0] for c in ASSOCIATION])
def test_face_body_association(case, faces, xs, expected) -> None:
    fs = [face(cx, cy) for cx, cy in faces]
    bs = [body(x) for x in xs]
    assert sorted(associate(fs, bs, CFG.keypoint_score)) == expected


def test_head_region_without_head_keypoints_is_the_top_of_the_box() -> None:
    b = body(100, head=False)
    assert head_region(b, 0.3).tolist() == [100, 100, 200, 175]
    assert associate([face(150, 130)], [b], 0.3) == [(0, 0)]


def test_a_face_on_a_body_below_its_head_is_clothing() -> None:
    b = body(100)
    heads = [head_region(b, 0.3)]
    assert on_torso(face(150, 250), [b], heads)  # on the chest
    assert not on_torso(face(150, 130), [b], heads)  # the head
    assert not on_torso(face(600, 250), [b], heads)  # beside the person
    # A shorter person in front of a taller one: their face is on the other's chest, but in
    # their own head region: a face.
    front = body(110, y=200, h=200)
    both = [b, front]
    heads = [head_region(x, 0.3) for x in both]
    mid = (heads[1][:2] + heads[1][2:]) / 2
    assert on_torso(face(float(mid[0]), float(mid[1])), [b], heads[:1])
    assert not on_torso(face(float(mid[0]), float(mid[1])), both, heads)


# --------------------------------------------------------------------------- attention


def turned(marks: np.ndarray, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    out = marks.copy()
    out[2] += (dx, dy)  # the nose
    return out


FRONT = UTK_MEAN_MARKS / 200.0 * 60


@pytest.mark.parametrize("marks, facing", [
    (FRONT, True),
    (turned(FRONT, dx=4), True),  # 4 of the 19.2 px between the eyes: yaw 0.42
    (turned(FRONT, dx=5), False),  # yaw 0.52: just past the limit
    (turned(FRONT, dx=9), False),  # past half-way to an eye
    (turned(FRONT, dy=-8), False),  # nose near the eye line: looking up
    (turned(FRONT, dy=6), False),  # nose near the mouth: looking down
    (turned(FRONT, dy=3), True),
])
def test_attention_from_face_landmarks(marks, facing) -> None:
    f = face(100, 100, 60, marks + 70)
    assert face_frontal(f, CFG) is facing


def test_pitch_is_zero_for_the_mean_face() -> None:
    assert pitch(UTK_MEAN_MARKS) == pytest.approx(0.0)


@pytest.mark.parametrize("b, facing", [
    (body(100), True),
    (body(100, turn=0.4), True),  # yaw 0.4
    (body(100, turn=0.8), False),  # yaw 0.8
    (body(100, head=False), False),  # a back: no nose, no eyes
])
def test_attention_from_keypoints(b: Body, facing: bool) -> None:
    assert body_frontal(b, CFG) is facing


def test_mirrored_eyes_are_a_head_turned_away() -> None:
    b = body(100)
    b.keypoints[[1, 2]] = b.keypoints[[2, 1]]
    assert keypoint_yaw(b, 0.3) == 1.0


def test_small_faces_are_judged_by_the_keypoints_large_ones_by_landmarks() -> None:
    away = turned(FRONT, dx=12) / 60 * 16 + 100  # a 16 px face in profile
    small = face(108, 108, 16, away)
    assert frontal(small, body(100), CFG) is True  # the keypoints: frontal
    assert frontal(small, None, CFG) is False  # no body: the landmarks are all there is
    big = face(150, 130, 60, turned(FRONT, dx=12) + 120)
    assert frontal(big, body(100), CFG) is False
    # A large "face" on a head whose keypoints see no face (the back of a head): not looking.
    assert frontal(face(150, 130, 60, FRONT + 120), body(100, head=False), CFG) is False


# --------------------------------------------------------------------------- people tracks


class Script:
    """A detector that plays back a list of per-frame detections."""

    def __init__(self, frames: list[list]) -> None:
        self.frames, self.i = frames, 0

    def detect(self, frame: np.ndarray) -> list:
        out = self.frames[self.i] if self.i < len(self.frames) else []
        self.i += 1
        return [type(d)(**{k: getattr(d, k) for k in d.__slots__}) for d in out]


def run(face_frames: list[list[Face]], body_frames: list[list[Body]], fps: float = 5.0,
        **config) -> list:
    cfg = CameraConfig.model_validate({"fps": fps, **config})
    stage = CameraStage(cfg, Script(face_frames), body_detector=Script(body_frames))
    frame = np.zeros((480, 640, 3), np.uint8)
    n = max(len(face_frames), len(body_frames))
    tracks = []
    for i in range(n):
        tracks += stage.process(frame, 1000.0 + i / fps)
    return tracks + stage.flush()


def walk(n: int, x0: float = 100.0, dx: float = 4.0, **kw) -> list[Body]:
    return [body(x0 + dx * i, **kw) for i in range(n)]


@pytest.mark.parametrize("case, faces, bodies, people", [
    ("face and body of one person: one visitor",
     [[face(150 + 4 * i, 130, 20)] for i in range(10)], [[b] for b in walk(10)], 1),
    ("a face without a body still counts",
     [[face(450, 130)] for _ in range(10)], [[] for _ in range(10)], 1),
    ("a body without a face counts, without attributes",
     [[] for _ in range(10)], [[b] for b in walk(10, head=False)], 1),
    ("two people side by side, both seen both ways",
     [[face(150, 130, 20), face(350, 130, 20)] for _ in range(10)],
     [[body(100), body(300)] for _ in range(10)], 2),
    ("a body lost for 2 s and found again under the same face: one person",
     [[face(150, 130, 20)] for _ in range(20)],
     [[body(100)] if not 5 <= i < 15 else [] for i in range(20)], 1),
    ("a two-frame false body (a poster, a shirt) stays out",
     [[] for _ in range(10)], [[body(100)] if i in (3, 4) else [] for i in range(10)], 0),
    ("a face printed on a shirt is no second visitor",
     [[face(150, 130, 20), face(150, 260, 20)] for _ in range(10)],
     [[body(100)] for _ in range(10)], 1),
])
def test_one_visitor_per_person(case, faces, bodies, people) -> None:
    tracks = run(faces, bodies)
    assert len(tracks) == people, case


def test_attention_time_and_watcher() -> None:
    # 10 frames at 5 fps: facing for the first 6 (1.2 s), then the head turned away.
    bodies = [[body(100, turn=0.0 if i < 6 else 0.9)] for i in range(10)]
    [person] = run([[] for _ in range(10)], bodies)
    assert person.attention_s == pytest.approx(1.2)
    assert person.watcher is True and person.face_hits == 0
    assert person.dwell_s == pytest.approx(1.8)
    bodies = [[body(100, turn=0.0 if i < 4 else 0.9)] for i in range(10)]  # 0.8 s: a glance
    [person] = run([[] for _ in range(10)], bodies)
    assert person.attention_s == pytest.approx(0.8) and person.watcher is False
    [person] = run([[] for _ in range(10)], bodies, attention={"min_attention_s": 0.5})
    assert person.watcher is True


def test_faces_only_still_measure_attention() -> None:
    faces = [[face(300, 200, 60, FRONT + 270)] for _ in range(8)]
    cfg = CameraConfig.model_validate({"bodies": {"enabled": False}})
    stage = CameraStage(cfg, Script(faces))
    assert stage.body_detector is None
    frame = np.zeros((480, 640, 3), np.uint8)
    tracks = [t for i in range(8) for t in stage.process(frame, 50.0 + i / 5)] + stage.flush()
    [track] = tracks
    assert track.attention_s == pytest.approx(1.4) and track.watcher  # capped at the dwell
    assert track.face_hits == 8


# --------------------------------------------------------------------------- real detectors


def _stage_run(frames: list[np.ndarray], fps: float = 5.0) -> tuple[list, CameraStage]:
    stage = CameraStage(CameraConfig(fps=fps))
    tracks = [t for i, f in enumerate(frames) for t in stage.process(f, 2000.0 + i / fps)]
    return tracks + stage.flush(), stage


def test_a_textured_object_makes_no_visitor() -> None:
    """A patterned cloth or poster in view for 4 s (both real detectors at their defaults)."""
    rng = np.random.default_rng(3)
    frame = np.full((720, 1280, 3), 128, np.uint8)
    cells = rng.integers(0, 255, (24, 16, 3), np.uint8)  # a bold check, 20 px squares
    frame[200:680, 500:820] = np.kron(cells, np.ones((20, 20, 1), np.uint8))
    stripes = (np.sin(np.arange(400)[:, None] / 3.0) * 100 + 128).astype(np.uint8)
    frame[100:500, 100:400] = np.repeat(stripes, 300, 1)[..., None]
    tracks, stage = _stage_run([frame.copy() for _ in range(20)])
    assert tracks == []


def test_a_person_seen_for_two_frames_stays_out() -> None:
    """A person (a reflection, a poster passed by) in 2 frames only: detected, not counted."""
    from audience.ingest.bench import clip_frames

    person = clip_frames()[20]
    empty = np.full_like(person, 128)
    frames = [empty] * 4 + [person, person] + [empty] * 10
    tracks, stage = _stage_run(frames)
    assert stage.counters.bodies >= 4  # the detectors saw them: the track rules kept them out
    assert tracks == []
    three = [empty] * 4 + [person] * 3 + [empty] * 10  # min_hits: three frames count
    assert len(_stage_run(three)[0]) == 3


def test_evaluate_counting_reports_faces_and_watchers(tmp_path) -> None:
    """The bundled clip: 3 people, 3 faces, 3 watchers (all face the camera, 3.3 s)."""
    import json

    import yaml
    from typer.testing import CliRunner

    from audience.cli import app
    from audience.ingest.bench import clip_path
    from audience.ingest.counting import ClipTruth

    (tmp_path / clip_path().name).symlink_to(clip_path())
    (tmp_path / "walk.yaml").write_text(yaml.safe_dump(
        {"clip": clip_path().name, "visitors": 3, "faces_seen": 3, "watchers": 3}))
    result = CliRunner().invoke(app, ["-q", "evaluate", "counting", "--clips", str(tmp_path),
                                      "--json", "--no-gender"])
    assert result.exit_code == 0, result.output
    [clip] = json.loads(result.stdout)["clips"]
    assert (clip["counted"], clip["faces_counted"], clip["watchers"], clip["watchers_true"]) == (
        3, 3, 3, 3)
    with pytest.raises(ValueError, match="3 watchers among 2 visitors"):
        ClipTruth.model_validate({"clip": "x.gif", "visitors": 2, "watchers": 3})


@pytest.mark.parametrize("bodies", [True, False], ids=["people", "faces only"])
def test_attention_reaches_the_database(db_url: str, bodies: bool) -> None:
    """The embedded pipeline on the bundled clip: 3 visits, each with its attention time
    (everyone faces the camera: at least 1 s, so watchers), with or without bodies."""
    from sqlalchemy import text

    import audience.pipeline as runner
    from audience.ingest.bench import clip_path
    from audience.settings import apply_overrides, load_config
    from audience.storage.db import migrate, open_engine

    if db_url.startswith("postgresql"):
        migrate(db_url)
    cfg = apply_overrides(load_config(), {
        "camera": {"source": str(clip_path()), "store": "s", "id": "c",
                   "bodies": {"enabled": bodies}},
        "database": {"url": db_url}})
    assert runner.run_pipeline(cfg, progress=False).visits == 3
    engine = open_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT dwell_s, attention_s, watcher FROM visits")).all()
    finally:
        engine.dispose()
    assert len(rows) == 3
    for dwell, attention_s, watcher in rows:
        assert 1.0 <= attention_s <= dwell and bool(watcher)
