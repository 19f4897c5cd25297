#!/usr/bin/env bash
# Create/refresh .venv-bench with the baselines of `audience bench analyzer` (make bench-env).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${BENCH_VENV:-.venv-bench}"
PY="${PY:-python3}"
test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r inference/bench-requirements.txt
# fer's metadata requires `tensorflow` (CUDA wheel) and facenet-pytorch (torch): its emotion
# path needs neither, and tensorflow-cpu above provides the `tensorflow` module.
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps fer==25.10.3
