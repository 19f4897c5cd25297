"""Kafka plumbing shared by the camera and inference workers: clients, topics, errors."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from audience.core.errors import ServiceError
from audience.core.kafka_config import KafkaConfig

log = logging.getLogger(__name__)

# Produce requests carry a little framing on top of the message itself.
_REQUEST_MARGIN = 64 * 1024
FETCH_MAX_WAIT_MS = 100


class BrokerError(ServiceError):
    """Kafka is unreachable or refused a request; one line saying what to do."""


class _CloseRaces(logging.Filter):
    """While one of our clients closes, kafka-python's tracebacks become one warning line.

    kafka-python 3 closes its connections on the caller's thread while its IO thread still
    runs their tasks, without a lock: a read on a socket just set to None ("Error receiving
    network data", AttributeError) or a task's coroutine closed while it executes ("Error
    closing coroutine for cancelled task", ValueError: generator already executing). Both
    were seen in CI; the library handles the error and nothing is lost (offsets are committed
    before close), but a worker that stops cleanly must not print a traceback. Outside a
    close the client's tracebacks reach the log untouched."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = 0
        self.lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.closing and record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(exc).__name__}: {exc}; while the client " \
                         "closed, ignored)"
            record.args = ()
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_CLOSE_RACES = _CloseRaces()


def _install_close_filter() -> None:
    """On every kafka-python logger (a logger's filter does not see its children's records)."""
    for name in list(logging.root.manager.loggerDict):
        if name == "kafka" or name.startswith("kafka."):
            logger = logging.getLogger(name)
            if _CLOSE_RACES not in logger.filters:
                logger.addFilter(_CLOSE_RACES)


@contextmanager
def closing_quietly() -> Iterator[None]:
    """Wrap a kafka-python client's ``close()``: see :class:`_CloseRaces`."""
    _install_close_filter()
    with _CLOSE_RACES.lock:
        _CLOSE_RACES.closing += 1
    try:
        yield
    finally:
        with _CLOSE_RACES.lock:
            _CLOSE_RACES.closing -= 1


def _servers(cfg: KafkaConfig) -> list[str]:
    return [s.strip() for s in cfg.bootstrap_servers.split(",") if s.strip()]


def _unreachable(cfg: KafkaConfig, exc: BaseException) -> BrokerError:
    return BrokerError(f"Kafka broker unreachable at {cfg.bootstrap_servers} "
                       f"({type(exc).__name__}): start it or fix kafka.bootstrap_servers "
                       "(env AUDIENCE_KAFKA__BOOTSTRAP_SERVERS)")


def ensure_topics(cfg: KafkaConfig, topics: list[str]) -> None:
    """Create the topics if missing, with short retention (they hold face crops); the
    dead-letter topic keeps its records longer (kafka.dlq_retention_ms) for a replay."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    # The client logs every failed connection attempt; we report the outcome in one line.
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    try:
        admin = KafkaAdminClient(bootstrap_servers=_servers(cfg), client_id="audience-admin",
                                 request_timeout_ms=10_000,
                                 bootstrap_timeout_ms=cfg.connect_timeout_ms)
    except (KafkaError, OSError) as exc:  # kafka-python 3: KafkaTimeoutError on bootstrap
        raise _unreachable(cfg, exc) from None
    finally:
        kafka_log.setLevel(level)
    try:
        existing = set(admin.list_topics())
        missing = {t: {"num_partitions": cfg.partitions,
                       "replication_factor": cfg.replication_factor,
                       "configs": {"retention.ms": str(cfg.dlq_retention_ms
                                                       if t == cfg.dlq_topic
                                                       else cfg.crops_retention_ms)}}
                   for t in topics if t not in existing}
        if missing:
            try:
                admin.create_topics(missing)
                log.info("created topic(s) %s (%d partitions, retention.ms %s)",
                         ", ".join(missing), cfg.partitions,
                         ", ".join(str(cfg.dlq_retention_ms if t == cfg.dlq_topic
                                       else cfg.crops_retention_ms) for t in missing))
            except TopicAlreadyExistsError:
                pass  # another worker was faster
    except KafkaError as exc:
        raise BrokerError(f"cannot create topics {', '.join(topics)} on "
                          f"{cfg.bootstrap_servers}: {exc}") from None
    finally:
        with closing_quietly():
            admin.close()


def make_producer(cfg: KafkaConfig, client_id: str, **options: Any) -> Any:
    """acks=all + idempotence: a retried send is neither lost nor duplicated in the log.
    ``options`` override kafka-python settings (e.g. max_block_ms)."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    try:
        return KafkaProducer(**({
            "bootstrap_servers": _servers(cfg), "client_id": client_id, "acks": "all",
            "enable_idempotence": True, "compression_type": "lz4", "linger_ms": 20,
            "max_request_size": cfg.max_message_bytes + _REQUEST_MARGIN,
            "request_timeout_ms": 15_000} | options))
    except (KafkaError, OSError) as exc:
        raise _unreachable(cfg, exc) from None


def make_consumer(cfg: KafkaConfig, client_id: str) -> Any:
    """A group member with manual commits: offsets move only after the DB commit."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    try:
        return KafkaConsumer(
            bootstrap_servers=_servers(cfg), client_id=client_id, group_id=cfg.group_id,
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=cfg.session_timeout_ms,
            heartbeat_interval_ms=max(500, cfg.session_timeout_ms // 3),
            max_poll_records=cfg.batch_max_messages,
            # An idle fetch is held this long by the broker. Apache Kafka answers as soon as a
            # message arrives; tansu (tests, benches) held a 500 ms fetch ~120 ms (p50) after
            # one arrived, 100 ms ~25 ms (measured here). Costs ~10 idle fetches/s per worker.
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            fetch_max_bytes=max(52_428_800, cfg.max_message_bytes * 2),
            max_partition_fetch_bytes=cfg.max_message_bytes + _REQUEST_MARGIN)
    except (KafkaError, OSError) as exc:
        raise _unreachable(cfg, exc) from None
