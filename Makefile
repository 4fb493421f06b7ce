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

.PHONY: setup test lint bench run demo browser lock clean images image-demo

setup: $(STAMP)

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

$(STAMP): $(UV) uv.lock pyproject.toml libs/*/pyproject.toml services/*/pyproject.toml \
  tools/*/pyproject.toml
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
	$(VENV)/bin/mypy libs/*/src services/*/src tools/*/src

bench: setup
	$(VENV)/bin/python -m bench

run: setup
	$(VENV)/bin/scwadd run

demo: setup browser
	$(VENV)/bin/scwadd run --demo

# One image per service, tagged $(IMAGE_PREFIX)scwadd-<service>:$(IMAGE_TAG), built with docker where
# an engine answers, else with buildah (installed from Debian when missing, as `browser` installs
# chromium). IMAGE_BASES=registry builds on the Dockerfiles' public base images, debian on
# stand-ins made from Debian packages and uv's PyPI wheel (no registry needed); auto picks
# registry with docker and debian with buildah. scripts/images/ holds the how; docs/deploy.md.
IMAGE_SERVICES := auth fetcher exporter files sandbox webhooks
IMAGE_PREFIX ?=
IMAGE_TAG ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE_BASES ?= auto
IMAGE_ENV := UV_VERSION=$(UV_VERSION) IMAGE_TAG=$(IMAGE_TAG) IMAGE_PREFIX=$(IMAGE_PREFIX) \
  IMAGE_BASES=$(IMAGE_BASES) PYTHON=$(PYTHON)
images:
	@if ! { command -v docker >/dev/null && docker info >/dev/null 2>&1; }; then \
	  bash scripts/images/tools.sh; fi
	$(IMAGE_ENV) bash scripts/images/build.sh $(IMAGE_SERVICES)

# The system from the images, as the chart runs them, in one podman pod with no network but its
# loopback; a customer and the operator go through it (scripts/images/pod.py, drive.py). podman
# runs it, so the images are built (or found, warm) with buildah into podman's storage.
image-demo: setup
	bash scripts/images/tools.sh
	$(IMAGE_ENV) IMAGE_ENGINE=buildah bash scripts/images/build.sh $(IMAGE_SERVICES)
	$(IMAGE_ENV) IMAGE_ENGINE=buildah bash scripts/images/bases.sh nats postgresql
	export UV_VERSION=$(UV_VERSION) IMAGE_ENGINE=buildah; . scripts/images/env.sh; \
	  $(VENV)/bin/python scripts/images/pod.py --tag $(IMAGE_TAG) --prefix "$(IMAGE_PREFIX)" \
	    --nats-image $$STANDIN_NATS --postgresql-image $$STANDIN_POSTGRESQL

clean:
	rm -rf $(VENV) $(TOOLS) .run .pytest_cache .mypy_cache .ruff_cache
