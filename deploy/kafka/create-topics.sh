#!/bin/sh
# One-shot job (docker-compose `kafka-topics`): create the pipeline's topics, and force their
# retention on every run, also when they already exist. The tracks and dead-letter topics hold
# face crops, which are biometric data: the tracks must not outlive the 1 h needed to label
# them. The dead letters (few, each waiting for an operator's `audience dlq replay`) are kept
# DLQ_RETENTION_MS, at most 7 days.
set -eu
BIN=/opt/kafka/bin
: "${BOOTSTRAP:=kafka:9092}" "${PARTITIONS:=6}" "${RETENTION_MS:=3600000}"
: "${DLQ_RETENTION_MS:=604800000}"
if [ "$RETENTION_MS" -gt 3600000 ]; then
  echo "RETENTION_MS=$RETENTION_MS is over 1 h (3600000 ms): crops must not be kept longer" >&2
  exit 2
fi
if [ "$DLQ_RETENTION_MS" -gt 604800000 ]; then
  echo "DLQ_RETENTION_MS=$DLQ_RETENTION_MS is over 7 days (604800000 ms): dead letters hold" \
    "crops and must not be kept longer" >&2
  exit 2
fi
for pair in "$TRACKS_TOPIC=$RETENTION_MS" "$DLQ_TOPIC=$DLQ_RETENTION_MS"; do
  topic=${pair%=*} keep=${pair##*=}
  "$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
    --topic "$topic" --partitions "$PARTITIONS" --replication-factor 1 \
    --config retention.ms="$keep" --config max.message.bytes=1048588
  "$BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --alter --entity-type topics \
    --entity-name "$topic" --add-config retention.ms="$keep"
done
"$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --describe --topic "$TRACKS_TOPIC"
