"""`audience dlq`: read the dead-letter topic and replay its records into the tracks topic.

A dead letter (worker._dead_letter) is JSON: schema, reason, the original topic, partition and
offset, and the original message as base64 (cut when it did not fit, then ``truncated``).
Replaying sends the original bytes back to the tracks topic under their original key; the
workers' upsert on (store, camera, track) stores a replayed visit once, however often it is
replayed. Only reasons and coordinates are ever printed, never the payload (face crops).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from audience.core.kafka_config import KafkaConfig
from audience.core.kafka_io import BrokerError, closing_quietly, make_producer

log = logging.getLogger(__name__)

_QUIET_POLLS = 3  # empty polls in a row (0.5 s each) that end the read of the topic


@dataclass
class DeadLetter:
    reason: str
    topic: str  #: where the message was consumed from
    partition: int
    offset: int
    time: float  #: epoch seconds it was dead-lettered (the DLQ record's timestamp)
    dlq_partition: int
    dlq_offset: int
    key: bytes | None
    original: bytes | None  #: None: not replayable (cut to fit, or unreadable)

    def row(self) -> dict[str, Any]:
        """What `dlq list` shows: never the payload."""
        return {"time": datetime.fromtimestamp(self.time, UTC).isoformat(timespec="seconds"),
                "reason": self.reason, "topic": self.topic, "partition": self.partition,
                "offset": self.offset, "replayable": self.original is not None,
                "dlq_partition": self.dlq_partition, "dlq_offset": self.dlq_offset}


def _parse(rec: Any) -> DeadLetter:
    when = (rec.timestamp or 0) / 1000
    try:
        body = json.loads(rec.value)
        original = None if body.get("truncated") else base64.b64decode(
            body["original_b64"], validate=True)
        return DeadLetter(str(body["reason"]), str(body["topic"]), int(body["partition"]),
                          int(body["offset"]), when, rec.partition, rec.offset, rec.key,
                          original)
    except (ValueError, KeyError, TypeError, binascii.Error):
        return DeadLetter("unreadable dead letter (not audience.dlq/1 JSON)", "?", -1, -1, when,
                          rec.partition, rec.offset, rec.key, None)


def read_dead_letters(cfg: KafkaConfig, timeout_s: float = 60) -> list[DeadLetter]:
    """Every record of the dead-letter topic, oldest first per partition (no consumer group:
    reading commits nothing and moves no other reader)."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(bootstrap_servers=[s.strip() for s in
                                                    cfg.bootstrap_servers.split(",")],
                                 client_id="audience-dlq", group_id=None,
                                 enable_auto_commit=False,
                                 request_timeout_ms=max(cfg.connect_timeout_ms, 15_000) + 1000,
                                 max_partition_fetch_bytes=cfg.max_message_bytes + 65536)
    except (KafkaError, OSError) as exc:
        raise BrokerError(f"Kafka broker unreachable at {cfg.bootstrap_servers} "
                          f"({type(exc).__name__}): start it or pass --bootstrap-servers"
                          ) from None
    out: list[DeadLetter] = []
    try:
        parts = consumer.partitions_for_topic(cfg.dlq_topic)
        if not parts:
            return out
        tps = [TopicPartition(cfg.dlq_topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        quiet, deadline = 0, time.monotonic() + timeout_s
        while quiet < _QUIET_POLLS and time.monotonic() < deadline:
            polled = consumer.poll(timeout_ms=500)
            got = [r for recs in polled.values() for r in recs]
            quiet = 0 if got else quiet + 1
            out.extend(_parse(r) for r in got)
    finally:
        with closing_quietly():
            consumer.close()
    out.sort(key=lambda d: (d.time, d.dlq_partition, d.dlq_offset))
    return out


@dataclass
class ReplaySummary:
    matched: int = 0
    replayed: int = 0
    not_replayable: int = 0  #: cut to fit the DLQ record, or unreadable


def replay(cfg: KafkaConfig, reason: str | None = None, dry_run: bool = False,
           letters: list[DeadLetter] | None = None) -> ReplaySummary:
    """Send the original of every dead letter whose reason contains ``reason`` (any case;
    all when None) back to the tracks topic."""
    letters = read_dead_letters(cfg) if letters is None else letters
    wanted = [d for d in letters if reason is None or reason.lower() in d.reason.lower()]
    summary = ReplaySummary(matched=len(wanted))
    todo = [d for d in wanted if d.original is not None]
    summary.not_replayable = len(wanted) - len(todo)
    if dry_run or not todo:
        return summary
    from kafka.errors import KafkaError

    producer = make_producer(cfg, "audience-dlq-replay")
    try:
        futures = [producer.send(cfg.tracks_topic, key=d.key, value=d.original,
                                 headers=[("replayed-from", f"{cfg.dlq_topic}:{d.dlq_partition}:"
                                                            f"{d.dlq_offset}".encode())])
                   for d in todo]
        producer.flush(timeout=60)
    except KafkaError as exc:
        raise BrokerError(f"replay to {cfg.tracks_topic} failed ({type(exc).__name__}): check "
                          "the broker and run it again (a replayed visit is stored once)"
                          ) from None
    finally:
        with closing_quietly():
            producer.close(timeout=10)
    summary.replayed = sum(1 for f in futures if f.succeeded())
    if summary.replayed < len(todo):
        raise BrokerError(f"{len(todo) - summary.replayed} of {len(todo)} dead letters were not "
                          f"accepted by {cfg.bootstrap_servers}: run the replay again (a "
                          "replayed visit is stored once)")
    log.info("replayed %d dead letters into %s", summary.replayed, cfg.tracks_topic)
    return summary
