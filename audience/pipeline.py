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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from audience.core.face import Face, Track
from audience.core.signals import StopEvent, install_sigterm
from audience.core.visit import Visit
from audience.inference.aggregate import label_tracks
from audience.inference.analyzer import FaceAnalyzer
from audience.ingest.camera import CameraStage
from audience.ingest.sources import open_source
from audience.settings import AppConfig
from audience.storage.config import DatabaseConfig
from audience.storage.db import StorageError, prepare_database
from audience.storage.outage import is_outage
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
    exit_code: int = 0  #: 130 when Ctrl-C stopped the run (after storing its visits)
    stopped: bool = False  #: a signal (or the caller's stop event) ended the run early




FrameObserver = Callable[[CameraStage, np.ndarray, float, list[Face]], None]


def run_pipeline(cfg: AppConfig, analyzer: FaceAnalyzer | None = None,
                 progress: bool = True, start_time: float | None = None,
                 on_frame: FrameObserver | None = None,
                 stop: threading.Event | None = None) -> RunSummary:
    """Analyse ``cfg.camera.source`` end to end and store one visit per track.

    ``on_frame`` (opt-in: annotated video, live view) sees every analysed frame with its
    tracked faces, in the camera thread; it must not keep frames beyond what it shows.

    Until the source ends or ``stop`` is set (by default SIGTERM or Ctrl-C set it): then the
    open tracks are ended, labelled and stored like any others, the camera thread is joined
    and ``summary.exit_code`` says 0 (SIGTERM) or 130 (Ctrl-C); ``summary.stopped`` is True.
    """
    if stop is not None:
        return _run(cfg, analyzer, progress, start_time, on_frame, stop)
    stop = StopEvent()
    restore = install_sigterm(stop)
    try:
        return _run(cfg, analyzer, progress, start_time, on_frame, stop)
    finally:
        restore()


def _run(cfg: AppConfig, analyzer: FaceAnalyzer | None, progress: bool,
         start_time: float | None, on_frame: FrameObserver | None,
         stop: threading.Event) -> RunSummary:
    cam = cfg.camera
    engine = prepare_database(cfg.database.url)
    analyzer = analyzer or FaceAnalyzer(cfg.analyzer)
    source = open_source(cam.source, cam.fps, start_time=start_time, progress=progress,
                         reconnect_max_s=cam.reconnect_max_s,
                         reconnect_attempts=cam.reconnect_attempts, stop=stop)
    stage = CameraStage(cam)
    stage.tracker.id_seed = source.identity()  # a rerun of a file upserts the same visits
    stage.on_frame = on_frame
    tracks: queue.Queue = queue.Queue(maxsize=1024)
    failure: list[BaseException] = []

    def camera_worker() -> None:
        try:
            for track in stage.run(_until(source, stop)):
                tracks.put(track)
        except BaseException as exc:  # handed to the main thread, which reports it
            failure.append(exc)
        finally:
            tracks.put(_END)

    summary = RunSummary(cam.store, cam.id)
    started = time.monotonic()
    worker = threading.Thread(target=camera_worker, name=f"camera-{cam.id}", daemon=True)
    worker.start()
    try:
        writer = BufferedWriter(VisitSink(engine, batch_size=_NEVER), cfg.database)
        for batch in _batches(tracks, max_tracks=max(1, cfg.analyzer.batch_size // 4)):
            visits = label_tracks(analyzer, batch, cfg.analyzer.crops_per_visit)
            writer.add(visits)
            summary.tracks += len(batch)
            summary.visits += len(visits)
        writer.drain(stop)
        summary.visits -= writer.dropped
    except BaseException:
        # Stop the camera thread before the error leaves: a process that exits while it
        # runs native code aborts ("terminate called without an active exception").
        stop.set()
        deadline = time.monotonic() + 15
        while worker.is_alive() and time.monotonic() < deadline:
            try:
                tracks.get(timeout=0.1)  # unblock a put() on a full queue
            except queue.Empty:
                pass
        raise
    worker.join()
    summary.seconds = time.monotonic() - started
    if isinstance(stop, StopEvent):
        summary.exit_code = stop.exit_code
    summary.stopped = stop.is_set()
    if stop.is_set():
        log.info("camera %s/%s: stopped on request; open tracks ended and stored", cam.store,
                 cam.id)
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
        log.warning("%d faces detected but none stayed for %d frames: camera.fps too low "
                    "for camera.tracker.min_hits, or faces seen only in single frames "
                    "(posters, reflections)", summary.faces, cam.tracker.min_hits)
    log.info("camera %s/%s: %d visits stored in %.1f s", cam.store, cam.id, summary.visits,
             summary.seconds)
    return summary


_NEVER = 1 << 62  # the sink's own batch size: BufferedWriter decides when to flush


class BufferedWriter:
    """The embedded runner's writes: a database that cannot take them (a full disk, a locked
    or read-only file, a server away) does not stop the camera. Visits wait in the sink's
    buffer (at most database.buffer_max_visits; beyond, the oldest are dropped with an
    error) and are retried with a doubling backoff; a warning says how many wait. A visit
    refused for its own content is an error as before."""

    def __init__(self, sink: VisitSink, db: DatabaseConfig) -> None:
        self.sink = sink
        self.db = db
        self.dropped = 0
        self.failing_since: float | None = None
        self._retry_s = 1.0
        self._next_try = 0.0

    def add(self, visits: list[Visit]) -> None:
        for visit in visits:
            self.sink.add(visit)
        if self.sink.pending >= self.db.batch_size and time.monotonic() >= self._next_try:
            self._flush()
        self._bound()

    def _flush(self) -> bool:
        try:
            self.sink.flush()
        except StorageError as exc:
            if not is_outage(exc):
                raise
            now = time.monotonic()
            if self.failing_since is None:
                self.failing_since = now
            reason = str(exc).split("; nothing was written")[0]
            log.warning("cannot write to the database (%s): %d visits wait in memory and are "
                        "retried in %.0f s; the camera goes on", reason, self.sink.pending,
                        self._retry_s)
            self._next_try = now + self._retry_s
            self._retry_s = min(self._retry_s * 2, self.db.retry_max_s)
            return False
        if self.failing_since is not None:
            log.warning("database writable again after %.0f s: the waiting visits are stored",
                        time.monotonic() - self.failing_since)
        self.failing_since, self._retry_s, self._next_try = None, 1.0, 0.0
        return True

    def _bound(self) -> None:
        extra = self.sink.pending - self.db.buffer_max_visits
        if extra > 0:
            kept = self.sink.drop_pending()
            for visit in kept[extra:]:
                self.sink.add(visit)
            self.dropped += extra
            log.error("%d visits lost: the database has not taken any for %.0f s and the "
                      "buffer is full (database.buffer_max_visits = %d)", extra,
                      time.monotonic() - (self.failing_since or time.monotonic()),
                      self.db.buffer_max_visits)

    def drain(self, stop: threading.Event) -> None:
        """The source ended: write what waits, retrying up to database.outage_deadline_s
        (a stop request shortens it to one more try); then StorageError (exit 3)."""
        started = time.monotonic()
        while self.sink.pending:
            if self._flush():
                return
            waited = time.monotonic() - started
            if waited >= self.db.outage_deadline_s or stop.is_set():
                raise StorageError(f"{self.sink.pending} visits could not be written: the "
                                   f"database refused writes for {waited:.0f} s after the "
                                   "source ended (see the warnings above); free space or fix "
                                   "the database and run again (a rerun of the same file "
                                   "stores each visit once)")
            time.sleep(max(0.0, min(self._next_try - time.monotonic(),
                                    self.db.outage_deadline_s - waited)))


def _until(source: Iterable[tuple[float, np.ndarray]], stop: threading.Event
           ) -> Iterator[tuple[float, np.ndarray]]:
    """The source's frames until ``stop`` is set; then the stage flushes its open tracks."""
    for item in source:
        if stop.is_set():
            return
        yield item


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
