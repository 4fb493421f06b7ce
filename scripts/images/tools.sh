#!/usr/bin/env bash
# The container tools `make images` and `make image-demo` use, installed from Debian's archive
# once, only when missing (as `make browser` installs chromium): buildah builds where no Docker
# engine answers, podman runs the pod (catatonit is its pause process), mmdebstrap makes the
# stand-in base images, runc is the runtime containers.conf names (crun refuses these machines'
# hybrid cgroups). The pod has no network but its loopback, so no network plugin is needed.
set -euo pipefail
missing=()
for package in buildah podman mmdebstrap runc catatonit; do
  command -v "$package" >/dev/null || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "images: installing ${missing[*]} from Debian" >&2
  apt-get -o DPkg::Lock::Timeout=900 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
    --no-install-recommends "${missing[@]}" uidmap >/dev/null
fi
