# SCWADD — every entry point a developer, CI or an operator needs.
# The environment bootstraps itself from the committed uv.lock on first use: nothing but
# python3 (>= 3.11) is assumed on the machine.

SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
STAMP := $(VENV)/.synced
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))

.PHONY: setup test lint bench run demo browser lock clean images

setup: $(STAMP)

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

$(STAMP): $(UV) uv.lock pyproject.toml libs/*/pyproject.toml services/*/pyproject.toml
	$(UV) sync --frozen --all-packages --python $(PYTHON)
	@touch $@

# Debian's chromium drives the page tests; installed once, only when missing.
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lock: $(UV)
	$(UV) lock

test: setup browser
	ESPI_XSD=$${ESPI_XSD:-$$(test -f ../shared/reference/espi/espi.xsd && echo ../shared/reference/espi/espi.xsd)} \
	  $(VENV)/bin/pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy libs/*/src services/*/src

bench: setup
	$(VENV)/bin/python -m bench

run: setup
	$(VENV)/bin/scwadd run

demo: setup browser
	$(VENV)/bin/scwadd run --demo

# One image per service, tagged $(IMAGE_PREFIX)scwadd-<service>:$(IMAGE_TAG). Needs a Docker engine;
# without one it says so and succeeds, since nothing here can build them (CI has no engine).
IMAGE_SERVICES := auth fetcher exporter files sandbox webhooks
IMAGE_PREFIX ?=
IMAGE_TAG ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
images:
	@if ! docker info >/dev/null 2>&1; then \
	  echo "images: no Docker engine reachable (docker info failed); nothing built"; exit 0; fi; \
	for svc in $(IMAGE_SERVICES); do \
	  docker build -f services/$$svc/Dockerfile -t $(IMAGE_PREFIX)scwadd-$$svc:$(IMAGE_TAG) . || exit 1; \
	done

clean:
	rm -rf $(VENV) $(TOOLS) .run .pytest_cache .mypy_cache .ruff_cache
