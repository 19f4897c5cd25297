"""The embedded runner: camera, inference and storage in one process.

The camera stage runs in a thread and puts finished tracks on an in-process queue (the
same role Kafka plays when the pipeline is scaled out); the main thread batches tracks,
labels their crops, folds them into visits and writes them through the sink.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from audience.core.face import Face, Track
from audience.inference.aggregate import label_tracks
from audience.inference.analyzer import FaceAnalyzer
from audience.ingest.camera import CameraStage
from audience.ingest.sources import open_source
from audience.settings import AppConfig
from audience.storage.db import prepare_database
from audience.storage.sink import VisitSink

log = logging.getLogger(__name__)

_END = object()



@dataclass
class RunSummary:
    store_id: str
    camera_id: str
    frames: int = 0
    faces: int = 0
    tracks: int = 0
    visits: int = 0
    seconds: float = 0.0




FrameObserver = Callable[[CameraStage, np.ndarray, float, list[Face]], None]


def run_pipeline(cfg: AppConfig, analyzer: FaceAnalyzer | None = None,
                 progress: bool = True, start_time: float | None = None,
                 on_frame: FrameObserver | None = None) -> RunSummary:
    """Analyse ``cfg.camera.source`` end to end and store one visit per track.

    ``on_frame`` (opt-in: annotated video, live view) sees every analysed frame with its
    tracked faces, in the camera thread; it must not keep frames beyond what it shows.
    """
    cam = cfg.camera
    engine = prepare_database(cfg.database.url)
    analyzer = analyzer or FaceAnalyzer(cfg.analyzer)
    source = open_source(cam.source, cam.fps, start_time=start_time, progress=progress,
                         reconnect_max_s=cam.reconnect_max_s,
                         reconnect_attempts=cam.reconnect_attempts)
    stage = CameraStage(cam)
    stage.on_frame = on_frame
    tracks: queue.Queue = queue.Queue(maxsize=1024)
    failure: list[BaseException] = []

    def camera_worker() -> None:
        try:
            for track in stage.run(source):
                tracks.put(track)
        except BaseException as exc:  # handed to the main thread, which reports it
            failure.append(exc)
        finally:
            tracks.put(_END)

    summary = RunSummary(cam.store, cam.id)
    started = time.monotonic()
    worker = threading.Thread(target=camera_worker, name=f"camera-{cam.id}", daemon=True)
    worker.start()
    with VisitSink(engine, batch_size=cfg.database.batch_size) as sink:
        for batch in _batches(tracks, max_tracks=max(1, cfg.analyzer.batch_size // 4)):
            visits = label_tracks(analyzer, batch, cfg.analyzer.crops_per_visit)
            for visit in visits:
                sink.add(visit)
            summary.tracks += len(batch)
            summary.visits += len(visits)
    worker.join()
    summary.seconds = time.monotonic() - started
    if failure:
        raise failure[0]
    summary.frames, summary.faces = stage.counters.frames, stage.counters.faces
    if summary.frames == 0:
        log.warning("no frames could be read from %s: check the file or stream", source.name)
    elif summary.faces == 0:
        log.warning("no faces detected in %d frames of %s: check the camera's angle and "
                    "lighting, or lower camera.detector.score_threshold", summary.frames,
                    source.name)
    elif summary.tracks == 0:
        log.warning("%d faces detected but none stayed for %d frames: faces too small "
                    "(camera.quality.min_face_px) or camera.fps too low for camera.tracker."
                    "min_hits", summary.faces, cam.tracker.min_hits)
    log.info("camera %s/%s: %d visits stored in %.1f s", cam.store, cam.id, summary.visits,
             summary.seconds)
    return summary


def _batches(q: queue.Queue, max_tracks: int) -> Iterable[list[Track]]:
    """Block for one track, then take whatever else is already waiting (up to max_tracks)."""
    while True:
        item = q.get()
        if item is _END:
            return
        batch = [item]
        while len(batch) < max_tracks:
            try:
                nxt = q.get_nowait()
            except queue.Empty:
                break
            if nxt is _END:
                yield batch
                return
            batch.append(nxt)
        yield batch
