"""Synthetic cameras: known visitors (UTKFace faces) walking across a noisy background.

The ground truth for counting tests and the load generator of the scaled-out pipeline.
Each visitor is one face image from a UTKFace folder, whose file name carries the labels
(``age_gender_race_date.jpg``: gender 0 male, 1 female). Visitors cross the frame one after
the other, so every one of them is exactly one visit.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from audience.core.errors import MissingFileError
from audience.core.kafka_config import KafkaConfig
from audience.ingest.config import CameraConfig

log = logging.getLogger(__name__)

DEFAULT_FACES = Path("../shared/datasets/utkface/crop_part1")
FRAME_W, FRAME_H, FACE_PX = 640, 360, 110
WALK_S, GAP_S = 2.5, 0.5  # crossing time; pause before the next visitor enters
_UTK = re.compile(r"^(\d+)_([01])_(\d)_")


@dataclass(slots=True)
class Visitor:
    camera_id: str
    file: str  #: UTKFace file name (its labels)
    age: int
    gender: str
    enter_s: float  #: seconds after the camera's start
    leave_s: float


@dataclass
class CameraPlan:
    camera_id: str
    store_id: str
    fps: float
    duration_s: float
    start_time: float
    visitors: list[Visitor] = field(default_factory=list)
    face_px: int = FACE_PX


def utk_labels(name: str) -> tuple[int, str] | None:
    """(age, gender) from a UTKFace file name, or None if it does not follow the pattern."""
    m = _UTK.match(name)
    return (int(m.group(1)), "female" if m.group(2) == "1" else "male") if m else None


def _background(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(110, 12, (FRAME_H, FRAME_W, 3)), 0, 255).astype(np.uint8)


def _load_face(folder: Path, name: str, size: int = FACE_PX) -> np.ndarray:
    img = cv2.imread(str(folder / name))
    if img is None:
        raise MissingFileError(f"cannot read face image {folder / name}")
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def pick_faces(folder: Path, n: int, seed: int = 0) -> list[str]:
    """``n`` labelled face files (with repeats if the folder is small) that YuNet detects
    on the synthetic background, so that the ground truth is what a camera can see."""
    from audience.ingest.detect import YuNetDetector

    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(f"faces folder {folder} not found: pass --faces DIR "
                                "(UTKFace crop_part1 or any age_gender_race_*.jpg folder)")
    names = sorted(p.name for p in folder.iterdir() if utk_labels(p.name))
    if not names:
        raise MissingFileError(f"no UTKFace-named images (age_gender_race_*.jpg) in {folder}")
    rng = np.random.default_rng(seed)
    rng.shuffle(names)
    detector, bg, chosen = YuNetDetector(0.7, 0.3, FRAME_W), _background(seed), []
    y, x = (FRAME_H - FACE_PX) // 2, (FRAME_W - FACE_PX) // 2
    for name in names:
        frame = bg.copy()
        frame[y:y + FACE_PX, x:x + FACE_PX] = _load_face(folder, name)
        if len(detector.detect(frame)) == 1:
            chosen.append(name)
            if len(chosen) == min(n, 200):  # the rest repeat: screening costs CPU
                break
    if not chosen:
        raise MissingFileError(f"no face in {folder} is detectable on the synthetic frames")
    return [chosen[i % len(chosen)] for i in range(n)]


def plan(cameras: int, fps: float, duration_s: float, faces: Path = DEFAULT_FACES,
         store_id: str = "sim-store", seed: int = 0, start_time: float | None = None,
         face_px: int | None = None) -> list[CameraPlan]:
    """Who walks past which camera when: one visitor per WALK_S + GAP_S seconds. Faces are
    ``face_px`` wide (default FACE_PX); which faces is screened at FACE_PX, so the truth is
    what a camera sees of a near visitor, and smaller faces test the counter."""
    per_camera = int(duration_s // (WALK_S + GAP_S))
    names = pick_faces(faces, cameras * per_camera, seed) if per_camera else []
    start = time.time() if start_time is None else start_time
    plans = []
    for c in range(cameras):
        p = CameraPlan(f"sim-cam-{c + 1}", store_id, fps, duration_s, start,
                       face_px=face_px or FACE_PX)
        for i in range(per_camera):
            name = names[c * per_camera + i]
            age, gender = utk_labels(name) or (0, "")
            enter = i * (WALK_S + GAP_S)
            p.visitors.append(Visitor(p.camera_id, name, age, gender, enter, enter + WALK_S))
        plans.append(p)
    return plans


def frames(p: CameraPlan, faces: Path = DEFAULT_FACES, realtime: bool = False,
           seed: int = 0) -> Iterator[tuple[float, np.ndarray]]:
    """The camera's frames at ``p.fps``: (epoch seconds, BGR frame)."""
    bg = _background(seed + zlib.crc32(p.camera_id.encode()) % 1000)
    size = p.face_px
    images = {v.file: _load_face(Path(faces), v.file, size) for v in p.visitors}
    y = (FRAME_H - size) // 2
    # The same speed in face widths as a FACE_PX face crossing the frame: a smaller face is
    # a farther visitor, who moves fewer pixels per second.
    path = (FRAME_W - FACE_PX - 20) * size / FACE_PX
    x0 = (FRAME_W - size - path) / 2
    t0 = time.monotonic()
    for i in range(int(p.duration_s * p.fps)):
        t = i / p.fps
        frame = bg.copy()
        for v in p.visitors:
            if v.enter_s <= t <= v.leave_s:  # left to right
                x = int(x0 + path * (t - v.enter_s) / WALK_S)
                frame[y:y + size, x:x + size] = images[v.file]
        if realtime:
            time.sleep(max(0.0, t0 + t - time.monotonic()))
        yield p.start_time + t, frame


def ground_truth(plans: list[CameraPlan]) -> dict:
    visitors = [asdict(v) for p in plans for v in p.visitors]
    return {"cameras": len(plans), "visitors": len(visitors),
            "per_camera": {p.camera_id: len(p.visitors) for p in plans},
            "store_id": plans[0].store_id if plans else None, "labels": visitors}


def write_frames(plans: list[CameraPlan], out: Path, faces: Path = DEFAULT_FACES) -> None:
    """Each camera as an image folder (a source `audience run --source` accepts), with its
    exact truth beside it as ``<camera>.yaml`` for `audience evaluate counting`."""
    for p in plans:
        folder = Path(out) / p.camera_id
        folder.mkdir(parents=True, exist_ok=True)
        for i, (_t, frame) in enumerate(frames(p, faces)):
            cv2.imwrite(str(folder / f"{i:06d}.png"), frame)
        truth = {"clip": p.camera_id, "visitors": len(p.visitors),
                 "faces_seen": len(p.visitors), "genders": [v.gender for v in p.visitors],
                 "in_view": [[v.enter_s, v.leave_s] for v in p.visitors],
                 "fps": p.fps, "note": f"simulated: {len(p.visitors)} faces of {p.face_px} px "
                 "crossing one at a time (exact truth)"}
        (Path(out) / f"{p.camera_id}.yaml").write_text(yaml.safe_dump(truth, sort_keys=False))
    (Path(out) / "ground_truth.json").write_text(json.dumps(ground_truth(plans), indent=1))


def publish(plans: list[CameraPlan], camera_cfg: CameraConfig, kafka: KafkaConfig,
            faces: Path = DEFAULT_FACES, realtime: bool = False,
            stats: dict[str, Any] | None = None) -> int:
    """Run the real camera stage of every camera (one thread each) and publish the tracks
    to Kafka; returns the number of tracks published. ``stats``, if given, receives each
    track's encode time (``encode_seconds``), its time from the track's end to the broker's
    acknowledgement (``ack_seconds``) and the message bytes sent (``bytes``)."""
    from audience.ingest.camera import CameraStage
    from audience.ingest.publisher import TrackPublisher, publish_source

    errors: list[BaseException] = []

    def one(p: CameraPlan, publisher: TrackPublisher) -> None:
        cam = camera_cfg.model_copy(update={"id": p.camera_id, "store": p.store_id,
                                            "fps": p.fps})
        try:
            publish_source(CameraStage(cam), frames(p, faces, realtime), publisher)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    with TrackPublisher(kafka) as publisher:
        if stats is not None:
            publisher.encode_seconds = stats.setdefault("encode_seconds", [])
            publisher.ack_seconds = stats.setdefault("ack_seconds", [])
        threads = [threading.Thread(target=one, args=(p, publisher), name=p.camera_id)
                   for p in plans]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if stats is not None:
        stats["bytes"] = publisher.bytes_sent
    if errors:
        raise errors[0]
    log.info("%d cameras: %d visitors, %d tracks published", len(plans),
             sum(len(p.visitors) for p in plans), publisher.sent)
    return publisher.sent
