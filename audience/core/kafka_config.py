"""Configuration of the scaled-out pipeline: camera workers -> Kafka -> inference workers."""

from __future__ import annotations

from pydantic import Field

from audience.core.config import Strict

ONE_HOUR_MS = 3_600_000
SEVEN_DAYS_MS = 7 * 24 * ONE_HOUR_MS
MAX_MESSAGE_BYTES = 900_000  # below Kafka's default message.max.bytes (~1 MB)


class KafkaConfig(Strict):
    bootstrap_servers: str = Field(
        "127.0.0.1:9092", min_length=1,
        description="Comma-separated host:port list of Kafka brokers.")
    tracks_topic: str = Field(
        "audience.tracks", min_length=1,
        description="Topic of finished tracks (with their face crops), keyed by camera id.")
    dlq_topic: str = Field(
        "audience.tracks.dlq", min_length=1,
        description="Dead-letter topic: messages that could not be decoded or analysed, with "
        "the reason in the 'error' header and in the payload.")
    connect_timeout_ms: int = Field(
        10_000, ge=100, le=300_000,
        description="How long a worker tries to reach the brokers at start before it exits "
        "with an error.")
    group_id: str = Field(
        "audience-infer", min_length=1,
        description="Consumer group of the inference workers (partitions are shared).")
    partitions: int = Field(
        6, ge=1, description="Partitions of the topics when a worker creates them; the most "
        "inference workers that can share the load.")
    replication_factor: int = Field(
        1, ge=1, description="Replicas of the topics when a worker creates them (3 in a "
        "production cluster).")
    # Crops are biometric data: they must not outlive the time needed to label them.
    crops_retention_ms: int = Field(
        ONE_HOUR_MS, ge=60_000, le=ONE_HOUR_MS,
        description="retention.ms of the tracks topic when created; at most 1 h because "
        "messages hold face crops.")
    # Dead letters wait for an operator (a weekend): `audience dlq replay` needs them. They
    # hold the crops of the few messages that failed, so the cap is a week.
    dlq_retention_ms: int = Field(
        SEVEN_DAYS_MS, ge=60_000, le=SEVEN_DAYS_MS,
        description="retention.ms of the dead-letter topic when created: long enough for an "
        "operator to fix the cause and `audience dlq replay`; at most 7 days (the dead "
        "letters hold their messages' face crops).")
    max_message_bytes: int = Field(
        MAX_MESSAGE_BYTES, ge=10_000, le=1_000_000,
        description="Largest message a camera worker sends; the worst crops of a track are "
        "dropped to fit (Kafka rejects messages over ~1 MB by default).")
    session_timeout_ms: int = Field(
        10_000, ge=1_000, le=300_000,
        description="Consumer group session timeout: how long a crashed worker keeps its "
        "partitions before they move to the others.")
    batch_max_messages: int = Field(
        64, ge=1, le=10_000,
        description="Messages (tracks) labelled in one analyzer call and one DB transaction.")
    # 0 = adaptive: an idle worker labels a message at once (latency), a backlogged one
    # still gets full batches from what it has fetched (throughput). See worker._poll_batch.
    batch_max_wait_ms: int = Field(
        0, ge=0, le=60_000,
        description="Extra wait (linger) to fill a batch after its first message; 0 processes "
        "at once what has arrived, so only a backlog makes batches.")
    metrics_port: int = Field(
        9400, ge=0, le=65535,
        description="Port of the worker's /metrics (Prometheus), /healthz and /livez "
        "endpoints; 0 disables them.")
    metrics_host: str = Field(
        "127.0.0.1", min_length=1,
        description="Address the metrics endpoints bind: loopback unless configured; set "
        "0.0.0.0 where Prometheus scrapes from another host or container (compose and "
        "Kubernetes set it explicitly).")
    publish_buffer_tracks: int = Field(
        10_000, ge=1, description="Camera worker: tracks kept in memory until the broker "
        "acknowledges them (while it is away or restarting); beyond this the oldest is dropped "
        "with an error.")
    publish_buffer_bytes: int = Field(
        256_000_000, ge=1_000_000, description="Camera worker: message bytes kept in memory "
        "until the broker acknowledges them; beyond this the oldest track is dropped with an "
        "error.")
    publish_unhealthy_after_s: float = Field(
        60, gt=0, description="Camera worker: /healthz answers 503 once publishing has failed, "
        "or a track has waited for the broker, this long.")
    publish_drain_s: float = Field(
        300, ge=0, description="Camera worker: how long a camera whose source ended (or that "
        "was stopped) waits for the broker to take its buffered tracks before it gives up on "
        "them (exit 3).")
