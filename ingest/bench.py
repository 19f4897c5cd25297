"""Camera-stage throughput on 720p input.

``python -m audience.ingest.bench [seconds] [threads]``
"""

from __future__ import annotations

import json
import sys
import time
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from audience.ingest.camera import CameraStage
from audience.ingest.config import CameraConfig
from audience.ingest.sources import open_source

CLIP = "face-demographics-walking-and-pause.gif"
WIDTH, HEIGHT = 1280, 720


def clip_path() -> Path:
    """The bundled 41-frame test clip (3 people walking towards the camera)."""
    return Path(str(resources.files("audience.ingest") / "assets" / CLIP))


def clip_frames(width: int = WIDTH, height: int = HEIGHT) -> list[np.ndarray]:
    """Every frame of the bundled clip, resized to ``width`` x ``height``."""
    source = open_source(clip_path(), fps=60.0, start_time=0.0, progress=False)
    return [cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)
            for _, frame in source]


def bench_camera(seconds: float = 10.0, threads: int = 1,
                 config: CameraConfig | None = None) -> dict[str, object]:
    """Frames per second of detection (faces, and bodies unless the config turns them off)
    + tracking + crop selection on 1280x720 frames.

    Every frame is processed (no fps sampling): the figure is the stage's capacity, e.g.
    25 fps serves five cameras analysed at 5 fps each on one core. ``fps`` is per second of
    wall time; ``cpu_fps`` per second of this process's CPU time, which is what one
    dedicated core gives when the machine is shared (wall time then counts other
    processes' turns too).
    """
    config = config or CameraConfig()
    frames = clip_frames()
    previous = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    try:
        stage = CameraStage(config)
        period = 1.0 / 12.5  # the clip's own frame rate, so tracking sees real motion
        stage.process(frames[0], 0.0)  # warm-up: first inference allocates
        stage.counters.frames = stage.counters.faces = stage.counters.bodies = 0
        n, t = 0, period
        start, cpu_start = time.perf_counter(), time.process_time()
        while time.perf_counter() - start < seconds:
            stage.process(frames[n % len(frames)], t)
            n += 1
            t += period
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        stage.flush()
    finally:
        cv2.setNumThreads(previous)
    return {
        "fps": round(n / elapsed, 1),
        "cpu_fps": round(n / max(cpu, 1e-9), 1),
        "frames": n,
        "faces_per_frame": round(stage.counters.faces / max(1, n), 2),
        "bodies": config.bodies.enabled,
        "bodies_per_frame": round(stage.counters.bodies / max(1, n), 2),
        "resolution": f"{WIDTH}x{HEIGHT}",
        "threads": threads,
        "work_width": config.detector.work_width,
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(bench_camera(float(args[0]) if args else 10.0,
                                  int(args[1]) if len(args) > 1 else 1)))
