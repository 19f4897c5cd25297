"""Kafka plumbing shared by the camera and inference workers: clients, topics, errors."""

from __future__ import annotations

import logging
from typing import Any

from audience.core.errors import ServiceError
from audience.core.kafka_config import KafkaConfig

log = logging.getLogger(__name__)

# Produce requests carry a little framing on top of the message itself.
_REQUEST_MARGIN = 64 * 1024
FETCH_MAX_WAIT_MS = 100


class BrokerError(ServiceError):
    """Kafka is unreachable or refused a request; one line saying what to do."""


class _ClosedSocketRead(logging.Filter):
    """Drops kafka-python 3's traceback for a read on a socket it has already closed.

    ``KafkaTCPTransport._close`` (called by ``consumer.close()`` on our thread) sets its socket
    to None without a lock while the client's IO thread may already be inside the read task it
    is about to cancel; ``_sock_recv`` then logs "Error receiving network data" at ERROR with
    an AttributeError traceback. Nothing is lost (the transport is closed, the error is
    handled by the library), but a worker that stops cleanly must not print a traceback. Any
    other read error still reaches the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if (isinstance(exc, AttributeError) and "'NoneType'" in str(exc)
                and str(record.msg).endswith("Error receiving network data closing socket")):
            log.debug("kafka client read on a socket it had just closed (ignored)")
            return False
        return True


_CLOSED_SOCKET_READ = _ClosedSocketRead()


def quiet_close_race() -> None:
    """Installs :class:`_ClosedSocketRead` on kafka-python's transport logger (idempotent)."""
    transport = logging.getLogger("kafka.net.transport")
    if _CLOSED_SOCKET_READ not in transport.filters:
        transport.addFilter(_CLOSED_SOCKET_READ)


def _servers(cfg: KafkaConfig) -> list[str]:
    return [s.strip() for s in cfg.bootstrap_servers.split(",") if s.strip()]


def _unreachable(cfg: KafkaConfig, exc: BaseException) -> BrokerError:
    return BrokerError(f"Kafka broker unreachable at {cfg.bootstrap_servers} "
                       f"({type(exc).__name__}): start it or fix kafka.bootstrap_servers "
                       "(env AUDIENCE_KAFKA__BOOTSTRAP_SERVERS)")


def ensure_topics(cfg: KafkaConfig, topics: list[str]) -> None:
    """Create the topics if missing, with short retention (they hold face crops)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    quiet_close_race()
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
                       "configs": {"retention.ms": str(cfg.crops_retention_ms)}}
                   for t in topics if t not in existing}
        if missing:
            try:
                admin.create_topics(missing)
                log.info("created topic(s) %s (%d partitions, retention %d ms)",
                         ", ".join(missing), cfg.partitions, cfg.crops_retention_ms)
            except TopicAlreadyExistsError:
                pass  # another worker was faster
    except KafkaError as exc:
        raise BrokerError(f"cannot create topics {', '.join(topics)} on "
                          f"{cfg.bootstrap_servers}: {exc}") from None
    finally:
        admin.close()


def make_producer(cfg: KafkaConfig, client_id: str) -> Any:
    """acks=all + idempotence: a retried send is neither lost nor duplicated in the log."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    quiet_close_race()
    try:
        return KafkaProducer(
            bootstrap_servers=_servers(cfg), client_id=client_id, acks="all",
            enable_idempotence=True, compression_type="lz4", linger_ms=20,
            max_request_size=cfg.max_message_bytes + _REQUEST_MARGIN, request_timeout_ms=15_000)
    except (KafkaError, OSError) as exc:
        raise _unreachable(cfg, exc) from None


def make_consumer(cfg: KafkaConfig, client_id: str) -> Any:
    """A group member with manual commits: offsets move only after the DB commit."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    quiet_close_race()
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
