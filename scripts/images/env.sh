# Sourced by the image scripts: the container tools' settings and the image names.
# shellcheck shell=bash
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CONTAINERS_CONF="$REPO/scripts/images/containers.conf"
UV_VERSION="${UV_VERSION:?the Makefile passes UV_VERSION}"
# The stand-ins built from Debian packages when no registry of images is reachable.
STANDIN_PYTHON="localhost/scwadd-ci/python:3.11-bookworm"
STANDIN_UV="localhost/scwadd-ci/uv:$UV_VERSION"
STANDIN_NATS="localhost/scwadd-ci/nats:bookworm"
STANDIN_POSTGRESQL="localhost/scwadd-ci/postgresql:bookworm"
# Docker where an engine answers, else buildah (and podman to import and run).
if [ -z "${IMAGE_ENGINE:-}" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    IMAGE_ENGINE=docker
  else
    IMAGE_ENGINE=buildah
  fi
fi
if [ "$IMAGE_ENGINE" = docker ]; then
  IMAGES_CLI=docker
else
  IMAGES_CLI=podman
fi
image_exists() { "$IMAGES_CLI" image inspect "$1" >/dev/null 2>&1; }
