"""The camera worker: frames -> CameraStage -> finished tracks -> Kafka (keyed by camera id).

    with TrackPublisher(kafka) as pub:   # flushes on exit
        for track in stage.run(source):
            pub.add(track)
"""

from __future__ import annotations

import contextlib
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


@dataclass(slots=True)
class _Pending:
    """A track's message waiting for the broker's acknowledgement (crops encoded; the
    callbacks and log lines use only the ids)."""

    key: bytes
    value: bytes
    camera: str
    track_id: str
    crops: int
    started: float  #: perf_counter at encode (acknowledgement latency)
    queued: float  #: monotonic time it entered the buffer


class TrackPublisher:
    """Sends tracks to the tracks topic: acks=all, idempotent, lz4, at most max_message_bytes.

    Survives the broker: every track stays in a bounded buffer (kafka.publish_buffer_tracks,
    kafka.publish_buffer_bytes) until the broker acknowledges it. A send that fails puts it
    back; a producer that failed (a broker restarted without our producer id, answering
    UnknownError to it forever; a fenced or timed-out producer) is closed and a new one made,
    with a doubling backoff while the broker is away. A background thread does the sending, so
    the camera goes on. A track is only lost when the buffer is full (the oldest goes, with an
    error) or when the publisher closes with tracks it could not deliver.
    """

    def __init__(self, cfg: KafkaConfig, producer: Any = None,
                 metrics: CameraMetrics | None = None, create_topics: bool = True) -> None:
        self.cfg = cfg
        if create_topics:
            ensure_topics(cfg, [cfg.tracks_topic])
        self.producer = producer or self._new_producer()
        self._own_producer = producer is None
        self.metrics = metrics or CameraMetrics()
        self.sent = 0
        self.failed = 0  #: tracks lost: dropped from a full buffer, or undelivered at close
        self.encode_seconds: list[float] | None = None  #: set to a list to record each encode
        #: set to a list to record each track's end -> broker acknowledgement (acks=all)
        self.ack_seconds: list[float] | None = None
        self.bytes_sent = 0  #: message bytes handed to the producer
        self.producers_made = 1  #: producers created (1 + recreations after failures)
        self.failing_since: float | None = None  #: monotonic time of the first failed send
        self._lock = threading.RLock()
        self._seq = 0
        self._waiting: dict[int, _Pending] = {}  # to send (insertion order = seq order)
        self._inflight: dict[int, _Pending] = {}  # sent, not acknowledged
        self._bytes = 0
        self._broken = False
        self._retry_s = 0.5
        self._next_try = 0.0
        self._wake = threading.Event()
        self._drained = False  # a full drain already ran out: close() does not wait again
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._pump_loop, name="track-publisher",
                                        daemon=True)
        self._thread.start()

    def _new_producer(self) -> Any:
        # A send waits at most 10 s for the broker's metadata, a batch 30 s for its ack: then
        # the track comes back to the buffer and the producer is replaced.
        return make_producer(self.cfg, "audience-camera", max_block_ms=10_000,
                             delivery_timeout_ms=30_000)

    # -- the camera's side -----------------------------------------------------------------
    def add(self, track: Track) -> None:
        started = time.perf_counter()
        data = encode_track(track, self.cfg.max_message_bytes)
        encode_s = time.perf_counter() - started
        self.metrics.encode_seconds.observe(encode_s)
        if self.encode_seconds is not None:
            self.encode_seconds.append(encode_s)
        item = _Pending(track.camera_id.encode(), data, track.camera_id, track.track_id,
                        sum(f.crop is not None for f in track.faces), started,
                        time.monotonic())
        with self._lock:
            self._make_room(len(data))
            self._seq += 1
            self._waiting[self._seq] = item
            self._bytes += len(data)
        self._wake.set()

    def _make_room(self, size: int) -> None:
        cfg = self.cfg
        while self._waiting and (len(self._waiting) + len(self._inflight) >=
                                 cfg.publish_buffer_tracks
                                 or self._bytes + size > cfg.publish_buffer_bytes):
            seq = next(iter(self._waiting))
            old = self._waiting.pop(seq)
            self._bytes -= len(old.value)
            self._lost(old, "the publish buffer is full (kafka.publish_buffer_tracks / "
                            "publish_buffer_bytes) while the broker does not accept tracks")

    def _lost(self, item: _Pending, why: str) -> None:
        self.failed += 1
        self.metrics.errors.labels(item.camera).inc()
        log.error("track %s of camera %s lost: %s", item.track_id, item.camera, why)

    @property
    def pending(self) -> int:
        """Tracks buffered or in flight, not yet acknowledged by the broker."""
        with self._lock:
            return len(self._waiting) + len(self._inflight)

    def healthy(self) -> bool:
        """False once publishing has failed, or a track has waited, for longer than
        kafka.publish_unhealthy_after_s (the camera's /healthz then says 503)."""
        limit, now = self.cfg.publish_unhealthy_after_s, time.monotonic()
        with self._lock:
            oldest = min((i.queued for d in (self._waiting, self._inflight)
                          for i in d.values()), default=now)
            failing = self.failing_since
        return now - oldest < limit and (failing is None or now - failing < limit)

    # -- the sending thread ----------------------------------------------------------------
    def _pump_loop(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(0.25)
            self._wake.clear()
            try:
                self._pump()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any failure
                log.warning("publishing failed (%s: %s); retrying", type(exc).__name__, exc)
                self._broke()

    def _pump(self) -> None:
        if self._broken:
            if time.monotonic() < self._next_try:
                return
            self._recreate()
            if self._broken:
                return
        from kafka.errors import KafkaError

        while not self._closed.is_set():
            with self._lock:
                if not self._waiting or self._broken:
                    return
                seq = next(iter(self._waiting))
                item = self._waiting.pop(seq)
                self._inflight[seq] = item
            try:
                future = self.producer.send(self.cfg.tracks_topic, key=item.key,
                                            value=item.value)
            except (KafkaError, OSError) as exc:  # metadata timeout, a failed producer
                self._back(seq, exc)
                return
            self.bytes_sent += len(item.value)
            future.add_callback(lambda _md, s=seq: self._ok(s))
            future.add_errback(lambda exc, s=seq: self._back(s, exc))

    def _ok(self, seq: int) -> None:
        with self._lock:
            item = self._inflight.pop(seq, None)
            if item is None:
                return
            self._bytes -= len(item.value)
            self.sent += 1
            if self.failing_since is not None:
                log.warning("the broker accepts tracks again after %.0f s of failures; %d "
                            "buffered", time.monotonic() - self.failing_since,
                            len(self._waiting) + len(self._inflight))
            self.failing_since = None
            self._retry_s = 0.5
        if self.ack_seconds is not None:
            self.ack_seconds.append(time.perf_counter() - item.started)
        self.metrics.tracks.labels(item.camera).inc()
        self.metrics.crops.labels(item.camera).inc(item.crops)

    def _back(self, seq: int, exc: BaseException) -> None:
        """A send failed: the track goes back to the buffer, the producer is replaced."""
        with self._lock:
            item = self._inflight.pop(seq, None)
            if item is None:
                return
            self._waiting[seq] = item
            self._waiting = dict(sorted(self._waiting.items()))  # oldest first again
            first = self.failing_since is None
            if first:
                self.failing_since = time.monotonic()
        self.metrics.errors.labels(item.camera).inc()
        if first:
            log.error("the broker did not accept track %s of camera %s (%s: %s): it stays "
                      "buffered (%d tracks now) and is sent again with a new producer",
                      item.track_id, item.camera, type(exc).__name__, exc, self.pending)
        self._broke()

    def _broke(self) -> None:
        with self._lock:
            if not self._broken:
                self._broken = True
                self._next_try = time.monotonic() + self._retry_s

    def _recreate(self) -> None:
        """Close the failed producer (its unsent tracks come back through _back) and make a
        new one; a failure doubles the wait before the next attempt (at most 10 s)."""
        old = self.producer
        with closing_quietly(), contextlib.suppress(Exception):
            old.close(timeout=0)
        with self._lock:  # anything the old producer still held: back to the buffer
            for seq in sorted(self._inflight):
                self._waiting[seq] = self._inflight.pop(seq)
            self._waiting = dict(sorted(self._waiting.items()))
        try:
            self.producer = self._new_producer()
        except BrokerError as exc:
            log.warning("%s; %d tracks buffered, next try in %.1f s", exc, self.pending,
                        self._retry_s)
            self._next_try = time.monotonic() + self._retry_s
            self._retry_s = min(self._retry_s * 2, 10.0)
            return
        self.producers_made += 1
        self._broken = False
        self._retry_s = min(self._retry_s * 2, 10.0)
        log.info("new Kafka producer made (%d so far); %d tracks to send", self.producers_made,
                 self.pending)

    # -- end ---------------------------------------------------------------------------------
    def flush(self, timeout_s: float | None = None, stop: threading.Event | None = None) -> int:
        """Wait until the broker acknowledged every buffered track, at most ``timeout_s``
        (default kafka.publish_drain_s) or until ``stop``; returns the tracks still pending."""
        if timeout_s is None:
            timeout_s = 1.0 if self._drained else self.cfg.publish_drain_s
        deadline = time.monotonic() + timeout_s
        while self.pending and time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                break
            self._wake.set()
            with contextlib.suppress(Exception):
                if not self._broken:
                    self.producer.flush(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
            time.sleep(0.05)
        left = self.pending
        self._drained = self._drained or bool(left)
        return left

    def close(self) -> None:
        try:
            left = self.flush()
        finally:
            self._closed.set()
            self._wake.set()
            self._thread.join(30)
            with closing_quietly(), contextlib.suppress(Exception):
                self.producer.close(timeout=10)
        with self._lock:
            undelivered = list(self._waiting.values()) + list(self._inflight.values())
            self._waiting, self._inflight = {}, {}
        for item in undelivered:
            self._lost(item, "the broker did not accept it before the camera stopped "
                             f"(waited kafka.publish_drain_s = {self.cfg.publish_drain_s:.0f} s)")
        if left and not undelivered:
            log.debug("the last tracks were acknowledged while closing")

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
    if publisher.pending:
        log.error("camera %s: %d track(s) still wait for the broker", stage.config.id,
                  publisher.pending)
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
    publisher = TrackPublisher(kafka, metrics=metrics)
    # Healthy while frames arrive (a dead stream is reconnecting, not serving) and the broker
    # takes the tracks (publishing failing for kafka.publish_unhealthy_after_s is not).
    server = serve(metrics.registry, kafka.metrics_port,
                   lambda: time.monotonic() - metrics.last_frame < 60 and publisher.healthy(),
                   host=kafka.metrics_host)
    restore = install_sigterm(stop)
    try:
        stage = CameraStage(cam)
        stage.tracker.id_seed = source.identity()  # a rerun of a file: the same track ids
        with publisher:
            summary = publish_source(stage, source, publisher, stop)
    finally:
        restore()
        if server:
            server.shutdown()
    summary.failed = publisher.failed  # includes what close() could not deliver
    if summary.failed:
        raise BrokerError(f"{summary.failed} of {summary.tracks + summary.failed} tracks were "
                          f"not accepted by {kafka.bootstrap_servers}: see the log")
    if isinstance(stop, StopEvent):
        summary.exit_code = stop.exit_code
    return summary
