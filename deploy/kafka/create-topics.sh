#!/bin/sh
# One-shot job (docker-compose `kafka-topics`): create the pipeline's topics, and force their
# retention on every run, also when they already exist. The tracks and dead-letter topics hold
# face crops, which are biometric data: they must not outlive the 1 h needed to label them.
set -eu
BIN=/opt/kafka/bin
: "${BOOTSTRAP:=kafka:9092}" "${PARTITIONS:=6}" "${RETENTION_MS:=3600000}"
if [ "$RETENTION_MS" -gt 3600000 ]; then
  echo "RETENTION_MS=$RETENTION_MS is over 1 h (3600000 ms): crops must not be kept longer" >&2
  exit 2
fi
for topic in "$TRACKS_TOPIC" "$DLQ_TOPIC"; do
  "$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
    --topic "$topic" --partitions "$PARTITIONS" --replication-factor 1 \
    --config retention.ms="$RETENTION_MS" --config max.message.bytes=1048588
  "$BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --alter --entity-type topics \
    --entity-name "$topic" --add-config retention.ms="$RETENTION_MS"
done
"$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --describe --topic "$TRACKS_TOPIC"
