# The project's vocabulary: make demo, make test, make lint, make up.
# Each target creates ./.venv on first use and installs what it needs into it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORKERS ?= 1

.PHONY: demo chat test test-fast lint format up down clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The demo needs only the base install (classic CPU backend: no torch, no weights).
$(VENV)/.base: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $@

# Tests also run the diffusers backend (CPU torch, tiny random pipeline) and the linters.
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev,diffusers,quantize]"
	touch $@ $(VENV)/.base

demo: $(VENV)/.base
	$(BIN)/stylebot demo

chat: $(VENV)/.base
	$(BIN)/stylebot chat

test: $(VENV)/.dev
	bash scripts/ci_deps.sh
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: $(VENV)/.dev
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "unit"

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bots tasks quota storage bench

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The profiles in .env's COMPOSE_PROFILES (gpu, or cpu; bots, monitoring); `make up WORKERS=4`
# puts a GPU worker on each of 4 GPUs.
up:
	docker compose up -d $(if $(filter-out 1,$(WORKERS)),--scale worker=$(WORKERS))

down:
	docker compose down

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
