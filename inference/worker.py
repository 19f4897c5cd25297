"""The inference worker: Kafka tracks -> one analyzer call per batch -> PostgreSQL -> commit.

At-least-once delivery (offsets are committed only after the batch's visits are committed
in the database) plus idempotent upserts on (store, camera, track) give exactly-once rows:
a batch replayed after a crash rewrites the same rows. A message that cannot be decoded or
analysed goes to the dead-letter topic with its reason, and the worker moves past it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from audience.core.face import Track
from audience.core.kafka_config import KafkaConfig
from audience.core.kafka_io import (
    BrokerError,
    closing_quietly,
    ensure_topics,
    make_consumer,
    make_producer,
)
from audience.core.signals import StopEvent
from audience.core.wire import MessageError, decode_message
from audience.inference.aggregate import label_tracks
from audience.inference.analyzer import FaceAnalyzer
from audience.inference.config import AnalyzerConfig
from audience.storage.config import DatabaseConfig
from audience.storage.db import StorageError
from audience.storage.outage import WriteWatchdog, is_outage
from audience.storage.sink import VisitSink

log = logging.getLogger(__name__)

DLQ_SCHEMA = "audience.dlq/1"
MAX_REASON = 1000  # characters of a dead-letter reason (an exception's text can be long)
MAX_KEY = 256  # bytes of the original key kept on the dead-letter copy
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


def _why(exc: BaseException) -> str:
    """One line about a failed write (StorageError's own text already is one)."""
    if isinstance(exc, StorageError):
        return str(exc).split("; nothing was written")[0]
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.messages = Counter("audience_worker_messages", "Messages consumed, by outcome.",
                                ["outcome"], registry=r)
        self.faces = Counter("audience_worker_faces", "Face crops analysed.", registry=r)
        self.visits = Counter("audience_worker_visits", "Visits written to the database.",
                              registry=r)
        self.dlq = Counter("audience_worker_dlq", "Messages sent to the dead-letter topic.",
                           registry=r)
        self.batch_seconds = Histogram("audience_worker_batch_seconds",
                                       "Decode + analyse + DB commit time of one batch.",
                                       buckets=_LATENCY_BUCKETS, registry=r)
        self.e2e_seconds = Histogram(
            "audience_worker_end_to_end_seconds",
            "Track published by the camera worker -> visit committed in the database.",
            buckets=_LATENCY_BUCKETS, registry=r)
        self.stage_seconds = Histogram(
            "audience_worker_stage_seconds",
            "Where a visit's latency goes: queued (camera encode + Kafka + waiting for this "
            "worker), wait (batch linger), decode, analyze, database (commit).",
            ["stage"], buckets=_LATENCY_BUCKETS, registry=r)
        self.lag = Gauge("audience_worker_consumer_lag",
                         "Messages behind the fetch high-water mark, per partition.",
                         ["topic", "partition"], registry=r)
        self.partitions = Gauge("audience_worker_assigned_partitions",
                                "Partitions of the tracks topic this worker holds.", registry=r)
        self.outage = Gauge("audience_worker_database_unavailable",
                            "1 while the database refuses writes and the worker waits for it "
                            "(partitions paused, nothing committed).", registry=r)
        self.outages = Counter("audience_worker_database_outages",
                               "Times the database became unavailable to this worker.",
                               registry=r)
        self.last_loop = time.monotonic()
        self.assigned = 0  #: partitions held at the last loop turn (readiness)


class StageClock:
    """Stage durations of one batch, from monotonic marks: ``wait`` is the linger between
    the first poll and processing, then ``decode``, ``analyze`` and ``database`` (the upsert
    transaction, retries included). ``queued`` (per message, from the camera's produced_at
    to the first poll) is added by the worker: camera encode, Kafka and time spent waiting
    for this worker to finish its previous batch."""

    def __init__(self, started: float) -> None:
        self._last = started
        self._stages: dict[str, float] = {}
        self.started_wall = time.time()  #: epoch seconds processing began

    def mark(self, stage: str) -> None:
        now = time.monotonic()
        self._stages[stage] = self._stages.get(stage, 0.0) + now - self._last
        self._last = now

    def stages(self) -> dict[str, float]:
        return dict(self._stages)


_Labelled = tuple[Any, Track, float | None, Any]  # record, track, produced_at, visit


@dataclass
class BatchResult:
    stored: int = 0
    dead: int = 0
    faces: int = 0


def _resume_from_committed(worker: InferenceWorker) -> Any:
    from kafka import ConsumerRebalanceListener

    class Listener(_ResumeFromCommitted, ConsumerRebalanceListener):
        pass

    return Listener(worker)


class _ResumeFromCommitted:
    """After every rebalance, each assigned partition resumes from its committed offset (the
    start of the log if none), not from where this consumer's fetches had got to. The
    client keeps the old position of a partition it is given again; when the log under it
    was reset (an in-memory broker restarted: offsets begin at 0 again, nothing committed),
    that position would silently skip the new messages. Anything fetched beyond the commit
    was not stored yet, so reading it again loses nothing (upserts: no duplicate).

    The listener runs on the client's IO thread, where no blocking call is allowed: it only
    notes the partitions; the poll loop seeks them (:meth:`InferenceWorker._resume`)."""

    def __init__(self, worker: InferenceWorker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: Any) -> None:
        pass

    def on_partitions_assigned(self, assigned: Any) -> None:
        with self.worker._resume_lock:
            self.worker._to_resume.update(assigned)


class InferenceWorker:
    """One member of the inference consumer group. ``run()`` until ``stop`` is set."""

    def __init__(self, cfg: KafkaConfig, analyzer: FaceAnalyzer, engine: Any,
                 crops_per_visit: int = 5, metrics: WorkerMetrics | None = None,
                 consumer: Any = None, producer: Any = None, create_topics: bool = True,
                 database: DatabaseConfig | None = None) -> None:
        self.cfg = cfg
        self.database = database or DatabaseConfig()
        self.watchdog = WriteWatchdog(engine, self.database.write_timeout_s)
        self.outage_since: float | None = None  #: monotonic start of a database outage
        self._resume_lock = threading.Lock()
        self._to_resume: set[Any] = set()  # partitions assigned since the last poll
        self._admin: Any = None  # reads the group's committed offsets after a rebalance
        self._topic_id: Any = None  # of the tracks topic: a change means it was recreated
        self._from_beginning = False  # the next assignment starts at the log's beginning
        self._retry_s = 1.0
        self.analyzer = analyzer
        self.engine = engine
        self.crops_per_visit = crops_per_visit
        self.metrics = metrics or WorkerMetrics()
        if create_topics:
            ensure_topics(cfg, [cfg.tracks_topic, cfg.dlq_topic])
        self.producer = producer or make_producer(cfg, "audience-infer-dlq")
        if consumer is None:
            self.consumer = make_consumer(cfg, "audience-infer")
            self.consumer.subscribe([cfg.tracks_topic], listener=_resume_from_committed(self))
        else:  # a test double
            self.consumer = consumer
            self.consumer.subscribe([cfg.tracks_topic])
        self.stop: threading.Event = StopEvent()
        self.stored = 0
        self.dead = 0
        self.faces = 0
        self.latencies: list[float] | None = None  #: set to a list to record each e2e latency
        #: set to a list to record, per stored visit, its stages (StageClock) in seconds
        self.timings: list[dict[str, float]] | None = None
        self.polled_at: float | None = None  #: epoch seconds the current batch's first poll

    # -- health ------------------------------------------------------------------------------
    def alive(self) -> bool:
        """/livez: the poll loop turns (a batch stuck for minutes is not alive), and no
        database write has hung past twice its limit (the watchdog could not free it)."""
        blocked = self.watchdog.blocked_s()
        return (time.monotonic() - self.metrics.last_loop < 120 + blocked
                and blocked < 2 * self.database.write_timeout_s)

    def ready(self) -> bool:
        """/healthz: alive and holding partitions, i.e. consuming (a consumer group that never
        settles assigns nothing; a spare worker beyond the partition count is not ready);
        not while the database is unavailable or a write waits longer than the statement
        timeout (a healthy write takes milliseconds)."""
        limit = self.database.statement_timeout_s or self.database.write_timeout_s
        return (self.alive() and self.metrics.assigned > 0 and self.outage_since is None
                and self.watchdog.blocked_s() < limit)

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        try:
            while not self.stop.is_set():
                records = self._poll_batch()
                if records:
                    self.process(records)
                self._update_lag()
        finally:
            self.close()

    def _poll_batch(self) -> list[Any]:
        """Adaptive batching: wait (up to 200 ms, so run() can check stop and lag) for the
        first message, then take only what has already arrived, up to batch_max_messages.

        An idle worker so processes a message at once instead of waiting to fill a batch,
        while a backlogged one gets full batches from its fetch buffer. ``batch_max_wait_ms``
        (default 0) adds an optional linger after the first message, for brokers where
        fewer, larger batches matter more than latency.
        """
        cfg, batch = self.cfg, list[Any]()
        self._check_recreated()
        linger_until = None
        while len(batch) < cfg.batch_max_messages and not self.stop.is_set():
            if linger_until is None:
                wait = 200
            else:  # 0: a non-blocking poll returns what is fetched already
                wait = max(0, int((linger_until - time.monotonic()) * 1000))
            polled = self._resume(self.consumer.poll(
                timeout_ms=wait, max_records=cfg.batch_max_messages - len(batch)))
            self.metrics.last_loop = time.monotonic()
            got = sum(len(recs) for recs in polled.values())
            for recs in polled.values():
                batch.extend(recs)
            if linger_until is None:
                if not batch:
                    return batch  # idle: let run() check stop and lag
                self.polled_at = time.time()
                linger_until = time.monotonic() + cfg.batch_max_wait_ms / 1000
            elif not got and time.monotonic() >= linger_until:
                break  # nothing more has arrived: process what we have now
        return batch

    def process(self, records: list[Any]) -> BatchResult:
        """Decode, label (one analyzer call), store (one transaction), dead-letter, commit."""
        started = time.monotonic()
        clock = StageClock(started)
        good: list[tuple[Any, Track, float | None]] = []
        dead: list[tuple[Any, str]] = []
        for rec in records:
            try:
                track, produced = decode_message(rec.value, self.cfg.max_message_bytes)
                good.append((rec, track, produced))
            except MessageError as exc:
                dead.append((rec, f"undecodable: {exc}"))
            except Exception as exc:  # noqa: BLE001 - no message may stop the worker
                dead.append((rec, f"undecodable: {type(exc).__name__}: {exc}"))
        clock.mark("decode")
        labelled, failed = self._label(good)
        clock.mark("analyze")
        dead.extend(failed)
        outcome = self._store(labelled)
        if outcome is None:  # stopped while the database was away: all of it is redelivered
            return BatchResult()
        stored, failed = outcome
        clock.mark("database")
        dead.extend(failed)
        now = time.time()
        for _rec, track, produced, _visit in stored:
            latency = max(0.0, now - (produced or track.ended_at))
            self.metrics.e2e_seconds.observe(latency)
            if self.latencies is not None:
                self.latencies.append(latency)
        self._record_stages(clock, [p or t.ended_at for _r, t, p, _v in stored], now,
                            len(records))
        sent = [self._dead_letter(rec, reason) for rec, reason in dead]
        if dead:
            self.producer.flush(timeout=30)  # the DLQ copy is durable before we move past it
            self._check_sent(sent)
        self._commit(records)
        result = BatchResult(stored=len(stored), dead=len(dead), faces=sum(
            min(len(t.faces), self.crops_per_visit) for _, t, _, _ in labelled))
        self.stored += result.stored
        self.dead += result.dead
        self.faces += result.faces
        m = self.metrics
        m.messages.labels("stored").inc(result.stored)
        m.messages.labels("dead_letter").inc(result.dead)
        m.faces.inc(result.faces)
        m.visits.inc(result.stored)
        m.batch_seconds.observe(time.monotonic() - started)
        log.debug("batch of %d: %d stored, %d dead-lettered", len(records), result.stored,
                  result.dead)
        return result

    def _record_stages(self, clock: StageClock, produced: list[float], committed: float,
                       batch: int) -> None:
        """Where each stored visit's latency went (see :class:`StageClock`)."""
        polled = self.polled_at or clock.started_wall
        stages = {"wait": max(0.0, clock.started_wall - polled), **clock.stages()}
        m = self.metrics
        for name, seconds in stages.items():
            m.stage_seconds.labels(name).observe(seconds)
        for p in produced:
            queued = max(0.0, polled - p)
            m.stage_seconds.labels("queued").observe(queued)
            if self.timings is not None:
                self.timings.append({"queued": queued, **stages, "batch": float(batch),
                                     "total": max(0.0, committed - p)})

    def _label(self, good: list[tuple[Any, Track, float | None]]
               ) -> tuple[list[_Labelled], list[tuple[Any, str]]]:
        """One analyzer call for the batch; if it fails, track by track to find the culprit."""
        try:
            visits = label_tracks(self.analyzer, [t for _, t, _ in good], self.crops_per_visit)
            return [(*g, v) for g, v in zip(good, visits, strict=True)], []
        except Exception as exc:  # noqa: BLE001
            log.warning("batch analysis failed (%s); retrying track by track", exc)
        labelled, failed = [], []
        for rec, track, produced in good:
            try:
                (visit,) = label_tracks(self.analyzer, [track], self.crops_per_visit)
                labelled.append((rec, track, produced, visit))
            except Exception as exc:  # noqa: BLE001 - a bad track must not stop the group
                failed.append((rec, f"analysis failed: {type(exc).__name__}: {exc}"))
        return labelled, failed

    def _store(self, labelled: list[_Labelled]
               ) -> tuple[list[_Labelled], list[tuple[Any, str]]] | None:
        """The batch's visits in one transaction. A visit the database refuses for its own
        content is found visit by visit and dead-lettered; a refusal that is the database's
        (down, read-only, full, frozen, permission: :func:`is_outage`) holds the batch and
        waits for the database (:meth:`_await_database`). None: stopped while waiting
        (nothing stored for sure, nothing to commit: the batch is redelivered)."""
        if not labelled:
            return [], []
        while True:
            try:
                self._write([v for *_, v in labelled])
                self._database_back()
                return labelled, []
            except Exception as exc:  # noqa: BLE001 - classified below
                if is_outage(exc):
                    if not self._await_database(exc, len(labelled)):
                        return None
                    continue
                log.warning("writing the batch of %d visits failed (%s); writing them one "
                            "by one to find the refused ones", len(labelled), _why(exc))
                break
        stored, failed = [], []
        for item in labelled:
            while True:
                try:
                    self._write([item[3]])
                    self._database_back()
                    stored.append(item)
                except Exception as exc:  # noqa: BLE001 - one visit must not stop the group
                    if is_outage(exc):
                        if not self._await_database(exc, len(labelled) - len(stored)):
                            return None
                        continue
                    failed.append((item[0], f"database refused the visit: {_why(exc)}"))
                break
        return stored, failed

    # -- database outages -------------------------------------------------------------------
    def _await_database(self, exc: BaseException, held: int) -> bool:
        """The database is unavailable: pause the partitions (nothing new is fetched, the
        group membership is kept), stay not-ready, wait with a doubling backoff; False if
        stop was set meanwhile; StorageError (exit 3) once ``outage_deadline_s`` is spent."""
        now = time.monotonic()
        db = self.database
        if self.outage_since is None:
            self.outage_since = now
            self._retry_s = 1.0
            self.metrics.outages.inc()
            log.error("database unavailable (%s): %d visits held in memory, partitions "
                      "paused, nothing dead-lettered or committed; retrying until it is back "
                      "(at most %.0f s, database.outage_deadline_s)", _why(exc), held,
                      db.outage_deadline_s)
        else:
            log.warning("database still unavailable after %.0f s (%s); %d visits held, next "
                        "try in %.0f s", now - self.outage_since, _why(exc), held,
                        self._retry_s)
        self.metrics.outage.set(1)
        # Fresh connections for the retry: a connection opened while the database was read-only
        # (or before a failover) stays read-only after the database is writable again.
        with contextlib.suppress(Exception):
            self.engine.dispose()
        if now - self.outage_since >= db.outage_deadline_s:
            raise StorageError(
                f"the database was unavailable for {now - self.outage_since:.0f} s "
                f"(last error: {_why(exc)}): giving up after database.outage_deadline_s; "
                f"nothing was committed, the {held} held visits will be redelivered to the "
                "next worker") from None
        self._pause()
        self._idle(min(self._retry_s, self.outage_since + db.outage_deadline_s - now))
        self._retry_s = min(self._retry_s * 2, db.retry_max_s)
        if self.stop.is_set():
            log.warning("stopped while the database was unavailable: nothing committed, the "
                        "%d held visits will be redelivered", held)
            return False
        return True

    def _database_back(self) -> None:
        if self.outage_since is None:
            return
        log.warning("database available again after %.0f s: held visits written, partitions "
                    "resumed", time.monotonic() - self.outage_since)
        self.outage_since = None
        self.metrics.outage.set(0)
        with contextlib.suppress(Exception):
            self.consumer.resume(*self.consumer.paused())

    def _pause(self) -> None:
        with contextlib.suppress(Exception):  # a test double or a closing consumer
            assigned = self.consumer.assignment()
            if assigned:
                self.consumer.pause(*assigned)

    def _idle(self, seconds: float) -> None:
        """Wait ``seconds`` while polling the (paused) consumer, so that the group keeps
        this member; a record of a partition assigned meanwhile is put back (seek)."""
        until = time.monotonic() + max(0.0, seconds)
        while not self.stop.is_set():
            left = until - time.monotonic()
            if left <= 0:
                return
            self._check_recreated()
            try:
                polled = self.consumer.poll(timeout_ms=int(min(0.2, left) * 1000))
            except Exception as exc:  # noqa: BLE001 - the broker may be away too
                log.debug("poll while waiting for the database: %s", exc)
                self.stop.wait(min(0.2, left))
                polled = {}
            polled = self._resume(polled)
            self.metrics.last_loop = time.monotonic()
            for tp, recs in polled.items():
                if recs:
                    self.consumer.seek(tp, min(r.offset for r in recs))
            self._pause()  # partitions assigned meanwhile too

    def _resume(self, polled: dict[Any, list[Any]]) -> dict[Any, list[Any]]:
        """Seek the partitions assigned since the last poll to their committed offsets (see
        :class:`_ResumeFromCommitted`); their records in ``polled`` are dropped (they come
        again from the committed offset)."""
        with self._resume_lock:
            fresh, self._to_resume = self._to_resume, set()
        if not fresh:
            return polled
        assigned = self.consumer.assignment()
        if self._from_beginning:  # the topic was recreated: all of it is new
            self._from_beginning = False
            if fresh & assigned:
                self.consumer.seek_to_beginning(*(fresh & assigned))
            return {tp: recs for tp, recs in polled.items() if tp not in fresh}
        offsets = self._group_offsets()
        for tp in fresh & assigned:
            try:
                committed = (offsets[tp].offset if tp in offsets else None) \
                    if offsets is not None else self.consumer.committed(tp)
                if committed is None or committed < 0:
                    self.consumer.seek_to_beginning(tp)
                else:
                    self.consumer.seek(tp, committed)
            except Exception as exc:  # noqa: BLE001 - the client's own position remains
                log.warning("partition %s[%d]: its committed offset could not be read (%s); "
                            "resuming where this worker was", tp.topic, tp.partition, exc)
        return {tp: recs for tp, recs in polled.items() if tp not in fresh}

    def _check_recreated(self) -> None:
        """A tracks topic whose id changed was deleted and created again (an in-memory broker
        that restarted, an operator): its offsets begin at 0 again, and the positions this
        consumer holds would skip the first new messages. Every message of the new topic is
        newer than the old one's, so its partitions are read from their beginning (a visit
        read twice is upserted, never stored twice)."""
        try:
            topic_id = self.consumer._client.cluster.topic_id(self.cfg.tracks_topic)
        except Exception:  # noqa: BLE001 - a test double, or a client without topic ids
            return
        if topic_id is None:
            return
        known, self._topic_id = self._topic_id, topic_id
        if known is None or known == topic_id:
            return
        assigned = self.consumer.assignment()
        log.warning("topic %s was created anew (its id changed: a broker restarted without "
                    "its data, or the topic was recreated): reading its %d assigned "
                    "partition(s) from the beginning", self.cfg.tracks_topic, len(assigned))
        if assigned:
            self.consumer.seek_to_beginning(*assigned)
        self._from_beginning = True  # and those assigned next (the group rebalances)

    def _group_offsets(self) -> dict[Any, Any] | None:
        """The group's committed offsets as the broker has them now (the consumer's own
        ``committed()`` may answer from its cache, which outlives a broker that lost its
        state); None if they cannot be read."""
        from kafka import KafkaAdminClient

        try:
            if self._admin is None:
                self._admin = KafkaAdminClient(
                    bootstrap_servers=[s.strip() for s in
                                       self.cfg.bootstrap_servers.split(",") if s.strip()],
                    client_id="audience-infer-offsets", request_timeout_ms=10_000)
            return dict(self._admin.list_consumer_group_offsets(self.cfg.group_id))
        except Exception as exc:  # noqa: BLE001 - fall back to the consumer's view
            log.debug("group offsets not read: %s", exc)
            return None

    def _db_answers(self) -> bool:
        """True if the database runs a trivial query: it is up, a failure was the data's."""
        from sqlalchemy import text

        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means "not answering"
            return False

    def _write(self, visits: list[Any]) -> None:
        # One flush = one transaction (add() never fills the buffer).
        sink = VisitSink(self.engine, batch_size=len(visits) + 1)
        for visit in visits:
            sink.add(visit)
        with self.watchdog.guard():
            sink.flush()

    def _dead_letter(self, rec: Any, reason: str) -> Any:
        """Send the DLQ copy (reason, topic, partition, offset, the value as base64, cut so
        that the record always fits max_message_bytes); returns the send's future."""
        value = rec.value or b""
        reason = reason if len(reason) <= MAX_REASON else reason[:MAX_REASON - 3] + "..."
        key = rec.key[:MAX_KEY] if rec.key else rec.key
        payload: dict[str, Any] = {
            "schema": DLQ_SCHEMA, "reason": reason, "topic": rec.topic,
            "partition": rec.partition, "offset": rec.offset, "original_bytes": len(value),
            "truncated": False, "original_b64": ""}
        # What is left for the value once the rest of the record is counted: base64 takes
        # 4 bytes per 3, and the reason travels twice (payload and header).
        room = self.cfg.max_message_bytes - len(json.dumps(payload)) - 2 * MAX_REASON - 4096
        keep = max(0, room) * 3 // 4
        if len(value) > keep:
            value, payload["truncated"] = value[:keep], True
        payload["original_b64"] = base64.b64encode(value).decode("ascii")
        from kafka.errors import KafkaError

        try:
            future = self.producer.send(self.cfg.dlq_topic, key=key,
                                        value=json.dumps(payload).encode(),
                                        headers=[("error", reason.encode()[:MAX_REASON]),
                                                 ("original-topic", rec.topic.encode())])
        except KafkaError as exc:
            raise BrokerError(f"cannot send to the dead-letter topic {self.cfg.dlq_topic} "
                              f"({type(exc).__name__}): check the broker; nothing was "
                              "committed, the batch will be redelivered") from exc
        self.metrics.dlq.inc()
        # The reason only, never the body: it may hold face crops.
        log.warning("message %s[%d]@%d dead-lettered: %s", rec.topic, rec.partition,
                    rec.offset, reason)
        return future

    @staticmethod
    def _check_sent(futures: list[Any]) -> None:
        """After the flush: if a DLQ copy was not accepted, stop before committing (the
        messages are redelivered) rather than move past a message that is nowhere."""
        for future in futures:
            if not future.succeeded():  # failed, or the flush timed out
                raise BrokerError(f"the dead-letter topic did not accept a message "
                                  f"({future.exception or 'timed out'}): check the broker; "
                                  "nothing was "
                                  "committed, the batch will be redelivered")

    def _commit(self, records: list[Any]) -> None:
        from kafka import TopicPartition
        from kafka.errors import CommitFailedError, KafkaError
        from kafka.structs import OffsetAndMetadata

        offsets: dict[Any, Any] = {}
        for rec in records:
            tp = TopicPartition(rec.topic, rec.partition)
            if tp not in offsets or offsets[tp].offset <= rec.offset:
                offsets[tp] = OffsetAndMetadata(rec.offset + 1, "", -1)
        try:
            self.consumer.commit(offsets=offsets)
        except (CommitFailedError, KafkaError) as exc:
            # The group rebalanced: another worker replays these messages; the upserts make
            # the replay harmless.
            log.warning("offset commit failed (%s): the batch will be redelivered", exc)

    def _update_lag(self) -> None:
        # The fetch high-water mark, not end_offsets (wrong on some brokers, e.g. tansu).
        try:
            assigned = self.consumer.assignment()
            self.metrics.assigned = len(assigned)
            self.metrics.partitions.set(len(assigned))
            self.metrics.lag.clear()  # partitions moved to another worker are not ours to report
            for tp in assigned:
                high, pos = self.consumer.highwater(tp), self.consumer.position(tp,
                                                                                timeout_ms=100)
                if high is not None and pos is not None:
                    self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, high - pos))
        except Exception as exc:  # noqa: BLE001 - metrics must never stop the worker
            log.debug("lag not updated: %s", exc)

    def close(self) -> None:
        try:
            self.producer.flush(timeout=10)
            with closing_quietly():
                self.producer.close(timeout=10)
        finally:
            with closing_quietly():
                self.consumer.close(autocommit=False)
            if self._admin is not None:
                with closing_quietly(), contextlib.suppress(Exception):
                    self._admin.close()
        log.info("inference worker closed: %d visits stored, %d dead-lettered", self.stored,
                 self.dead)


def run_worker(kafka: KafkaConfig, analyzer_cfg: AnalyzerConfig, database: DatabaseConfig,
               stop: threading.Event | None = None) -> InferenceWorker:
    """``audience infer``: consume until SIGTERM or Ctrl-C, then finish the batch, commit
    and return."""
    from audience.core.health import serve
    from audience.core.signals import install_sigterm
    from audience.storage.db import prepare_database, refuse_placeholder_password

    refuse_placeholder_password(database.url)  # before anything connects anywhere
    ensure_topics(kafka, [kafka.tracks_topic, kafka.dlq_topic])  # fail fast
    engine = prepare_database(database.url, statement_timeout_s=database.statement_timeout_s,
                              connect_timeout_s=database.connect_timeout_s)
    analyzer = FaceAnalyzer(analyzer_cfg)
    worker = InferenceWorker(kafka, analyzer, engine, analyzer_cfg.crops_per_visit,
                             create_topics=False, database=database)
    if stop is not None:
        worker.stop = stop
    m = worker.metrics
    server = serve(m.registry, kafka.metrics_port, worker.ready, host=kafka.metrics_host,
                   alive=worker.alive)
    restore = install_sigterm(worker.stop)
    log.info("inference worker in group %s on %s (topic %s)", kafka.group_id,
             kafka.bootstrap_servers, kafka.tracks_topic)
    try:
        worker.run()
    finally:
        restore()
        if server:
            server.shutdown()
        engine.dispose()
    return worker
