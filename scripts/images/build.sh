#!/usr/bin/env bash
# `make images`: one image per service, tagged ${IMAGE_PREFIX}scwadd-<service>:${IMAGE_TAG}, built
# from the repository root with docker where an engine answers, else with buildah.
# IMAGE_BASES=registry builds on the Dockerfiles' own base images (python:3.11-slim, uv from
# ghcr.io); IMAGE_BASES=debian builds the stand-ins first (bases.sh) and builds on them;
# auto (the default) means registry with docker and debian with buildah.
# The machine's CA bundle goes in as the build secret `ca-bundle` (SSL_CERT_FILE, else Debian's
# bundle), and proxy settings as the predefined proxy build arguments: uv inside the build
# reaches the package index the way this machine does.
# IMAGE_DRY_RUN=1 prints the build commands instead of running them (and builds no base).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO"
: "${IMAGE_TAG:?}"
IMAGE_PREFIX="${IMAGE_PREFIX:-}"
IMAGE_BASES="${IMAGE_BASES:-auto}"
[ "$#" -gt 0 ] || set -- auth fetcher exporter files sandbox webhooks
if [ "$IMAGE_BASES" = auto ]; then
  IMAGE_BASES=$([ "$IMAGE_ENGINE" = docker ] && echo registry || echo debian)
fi
args=()
case "$IMAGE_BASES" in
  registry) ;;
  debian)
    [ -n "${IMAGE_DRY_RUN:-}" ] || bash scripts/images/bases.sh python uv
    args+=(--build-arg "PYTHON_IMAGE=$STANDIN_PYTHON" --build-arg "UV_IMAGE=$STANDIN_UV")
    ;;
  *) echo "images: IMAGE_BASES is auto, registry or debian, not $IMAGE_BASES" >&2; exit 2 ;;
esac
ca_bundle="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
[ -s "$ca_bundle" ] && args+=(--secret "id=ca-bundle,src=$ca_bundle")
for proxy in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
  [ -n "${!proxy:-}" ] && args+=(--build-arg "$proxy=${!proxy}")
done
run=()
[ -z "${IMAGE_DRY_RUN:-}" ] || run=(echo)
for service in "$@"; do
  tag="${IMAGE_PREFIX}scwadd-$service:$IMAGE_TAG"
  echo "images: $tag ($IMAGE_ENGINE, $IMAGE_BASES bases)" >&2
  if [ "$IMAGE_ENGINE" = docker ]; then
    "${run[@]}" docker build "${args[@]}" -f "services/$service/Dockerfile" -t "$tag" .
  else
    # --layers keeps each step's layer, so an unchanged uv.lock reuses the dependency layer;
    # chroot isolation needs no user namespace (these machines may not nest one).
    "${run[@]}" buildah build --layers --isolation=chroot "${args[@]}" \
      -f "services/$service/Dockerfile" -t "$tag" .
  fi
done
