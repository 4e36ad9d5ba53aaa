# cbir — see README.md. `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The torch build to install. On this project's machines these pins come from local disk;
# elsewhere pass e.g. TORCH_SPEC="torch torchvision --index-url https://download.pytorch.org/whl/cpu".
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
IMAGES ?=
# make run BACKBONE=squeezenet1_1 WEIGHTS=/path/to/squeezenet1_1.pth: a local weights file (offline)
BACKBONE ?= vgg16
WEIGHTS ?=
# where make run builds its index (rebuilt every run)
DEMO_INDEX ?= demo/index
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv test lint unit run bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e '.[test,demo,ray,milvus,int8,parquet]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check retrieval indexer service tests bench
	$(BIN)/mypy retrieval indexer service bench
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint unit

run: $(STAMP)
	$(BIN)/python -m indexer demo --images "$(IMAGES)" --index "$(DEMO_INDEX)" \
		--backbone $(BACKBONE) $(if $(WEIGHTS),--weights "$(WEIGHTS)") --host $(HOST) --port $(PORT)

# Throughput and latency benchmarks (README "Performance"); writes bench/results/*.json.
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) demo test-output .mypy_cache .ruff_cache .pytest_cache
