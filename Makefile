# Quick start: `make demo` (analyse the bundled clip, no servers) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
KAFKA_STAMP := $(VENV)/.installed-kafka
CLIP := ingest/assets/face-demographics-walking-and-pause.gif
DEMO_DB := sqlite:///out/demo.db

.PHONY: setup demo test lint services superset-env browser dashboards bench bench-env train train-1.1 train-teacher evaluate clean

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

train: setup ## the shipped model 1.2.0: 1.1.0 fine-tuned on colour, distilled from 1.1.0 (about 45 min, 2 cores)
	$(BIN)/audience train --out runs/mt-1.2c --epochs 40 --widths 16,32,64,128 --channels 3 \
	  --gray 0.2 --init-from models/weights/audience-mt-1.1.0.json \
	  --teacher models/weights/audience-mt-1.1.0.json --distill 0.5 --lr 5e-4 --max-hours 2.4

train-1.1: setup ## 1.1.0, which 1.2.0 starts from: narrow backbone distilled from 1.0.0 (about 75 min)
	$(BIN)/audience train --out runs/mt-1.1 --epochs 70 --widths 16,32,64,128 \
	  --teacher models/weights/audience-mt-1.0.0.json --distill 0.5 --max-hours 2.4

train-teacher: setup ## the 1.0.0 teacher: wide backbone (about 2 h on 2 cores, then a warm restart)
	$(BIN)/audience train --out runs/mt-1.0

evaluate: setup ## accuracy of the shipped model on the named splits
	$(BIN)/audience evaluate fer2013 --csv ../shared/datasets/fer2013/fer2013.csv.gz --split PrivateTest
	$(BIN)/audience evaluate utkface --dir ../shared/datasets/utkface/crop_part1 --split test

clean:
	rm -rf out reports/out .pytest_cache
