"""The camera worker: frames -> CameraStage -> finished tracks -> Kafka (keyed by camera id).

    with TrackPublisher(kafka) as pub:   # flushes on exit
        for track in stage.run(source):
            pub.add(track)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram

from audience.core.face import Track
from audience.core.kafka_config import KafkaConfig
from audience.core.kafka_io import BrokerError, closing_quietly, ensure_topics, make_producer
from audience.core.signals import StopEvent, install_sigterm
from audience.core.wire import encode_track
from audience.ingest.camera import CameraStage
from audience.ingest.config import CameraConfig

log = logging.getLogger(__name__)


class CameraMetrics:
    """Counters of one camera worker; rate() of them gives frames/s and faces/s."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.frames = Counter("audience_camera_frames", "Frames analysed.", ["camera"],
                              registry=r)
        self.faces = Counter("audience_camera_faces", "Faces detected.", ["camera"], registry=r)
        self.tracks = Counter("audience_camera_tracks_published", "Tracks sent to Kafka.",
                              ["camera"], registry=r)
        self.crops = Counter("audience_camera_crops_published", "Face crops sent to Kafka.",
                             ["camera"], registry=r)
        self.errors = Counter("audience_camera_publish_errors", "Tracks Kafka did not accept.",
                              ["camera"], registry=r)
        self.encode_seconds = Histogram(
            "audience_camera_encode_seconds", "Track -> message (PNG crops, JSON) time.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25), registry=r)
        self.last_frame = time.monotonic()


class TrackPublisher:
    """Sends tracks to the tracks topic: acks=all, idempotent, lz4, at most max_message_bytes."""

    def __init__(self, cfg: KafkaConfig, producer: Any = None,
                 metrics: CameraMetrics | None = None, create_topics: bool = True) -> None:
        self.cfg = cfg
        if create_topics:
            ensure_topics(cfg, [cfg.tracks_topic])
        self.producer = producer or make_producer(cfg, "audience-camera")
        self.metrics = metrics or CameraMetrics()
        self.sent = 0
        self.failed = 0
        self.encode_seconds: list[float] | None = None  #: set to a list to record each encode
        #: set to a list to record each track's end -> broker acknowledgement (acks=all)
        self.ack_seconds: list[float] | None = None
        self.bytes_sent = 0  #: message bytes handed to the producer

    def add(self, track: Track) -> None:
        started = time.perf_counter()
        data = encode_track(track, self.cfg.max_message_bytes)
        encode_s = time.perf_counter() - started
        self.metrics.encode_seconds.observe(encode_s)
        if self.encode_seconds is not None:
            self.encode_seconds.append(encode_s)
        self.bytes_sent += len(data)
        future = self.producer.send(self.cfg.tracks_topic, key=track.camera_id.encode(),
                                    value=data)
        cam, tid = track.camera_id, track.track_id  # the callbacks must not hold the crops
        crops = sum(f.crop is not None for f in track.faces)
        future.add_callback(lambda _md: self._ok(cam, crops, started))
        future.add_errback(lambda exc: self._failed(cam, tid, exc))

    def _ok(self, camera: str, crops: int, started: float) -> None:
        if self.ack_seconds is not None:
            self.ack_seconds.append(time.perf_counter() - started)
        self.sent += 1
        self.metrics.tracks.labels(camera).inc()
        self.metrics.crops.labels(camera).inc(crops)

    def _failed(self, camera: str, track_id: str, exc: BaseException) -> None:
        self.failed += 1
        self.metrics.errors.labels(camera).inc()
        log.error("track %s of camera %s not accepted by Kafka: %s", track_id, camera, exc)

    def flush(self, timeout_s: float = 30.0) -> None:
        self.producer.flush(timeout=timeout_s)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            with closing_quietly():
                self.producer.close(timeout=10)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@dataclass
class PublishSummary:
    frames: int = 0
    tracks: int = 0
    failed: int = 0
    exit_code: int = 0  #: 130 when Ctrl-C stopped the camera


def _until(source: Iterable[tuple[float, np.ndarray]], stop: threading.Event,
           stage: CameraStage, metrics: CameraMetrics) -> Iterator[tuple[float, np.ndarray]]:
    """The source until ``stop`` is set; counts frames and faces for the metrics."""
    cam, faces = stage.config.id, 0
    for item in source:
        if stop.is_set():
            log.info("camera %s: stop requested, flushing open tracks", cam)
            return
        yield item
        metrics.frames.labels(cam).inc()
        metrics.faces.labels(cam).inc(stage.counters.faces - faces)
        faces = stage.counters.faces
        metrics.last_frame = time.monotonic()


def publish_source(stage: CameraStage, source: Iterable[tuple[float, np.ndarray]],
                   publisher: TrackPublisher, stop: threading.Event | None = None
                   ) -> PublishSummary:
    """Run the camera stage over ``source`` and publish every finished track; on ``stop`` the
    open tracks are ended and published too. Flushes before returning."""
    stop = stop or threading.Event()
    for track in stage.run(_until(source, stop, stage, publisher.metrics)):
        publisher.add(track)
    publisher.flush()
    if publisher.failed:
        log.error("camera %s: %d track(s) could not be published", stage.config.id,
                  publisher.failed)
    return PublishSummary(stage.counters.frames, publisher.sent, publisher.failed)




def run_camera(cam: CameraConfig, kafka: KafkaConfig,
               stop: threading.Event | None = None) -> PublishSummary:
    """``audience camera``: the camera's source, published to Kafka, until the source ends
    or ``stop`` is set (SIGTERM, Ctrl-C: ``summary.exit_code`` is then 0 or 130)."""
    from audience.core.health import serve
    from audience.ingest.sources import open_source

    stop = stop or StopEvent()
    source = open_source(cam.source, cam.fps, reconnect_max_s=cam.reconnect_max_s,
                         reconnect_attempts=cam.reconnect_attempts, progress=False, stop=stop)
    metrics = CameraMetrics()
    # Healthy while frames arrive (a dead stream is reconnecting, not serving).
    server = serve(metrics.registry, kafka.metrics_port,
                   lambda: time.monotonic() - metrics.last_frame < 60, host=kafka.metrics_host)
    restore = install_sigterm(stop)
    try:
        with TrackPublisher(kafka, metrics=metrics) as publisher:
            summary = publish_source(CameraStage(cam), source, publisher, stop)
    finally:
        restore()
        if server:
            server.shutdown()
    if summary.failed:
        raise BrokerError(f"{summary.failed} of {summary.tracks + summary.failed} tracks were "
                          f"not accepted by {kafka.bootstrap_servers}: see the log")
    if isinstance(stop, StopEvent):
        summary.exit_code = stop.exit_code
    return summary
