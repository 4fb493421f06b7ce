#!/usr/bin/env bash
# The container tools `make images` and `make image-demo` use, installed from Debian's archive
# once, only when missing (as `make browser` installs chromium): buildah builds where no Docker
# engine answers, podman runs the pod, mmdebstrap makes the stand-in base images, runc is the
# runtime our containers.conf names (crun refuses these machines' hybrid cgroups).
set -euo pipefail
missing=()
for tool in buildah podman mmdebstrap runc; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
# podman's rootful networking and the overlay driver's helpers come as recommends; name them.
command -v slirp4netns >/dev/null || missing+=(slirp4netns)
[ -x /usr/lib/podman/netavark ] || [ -x /usr/libexec/podman/netavark ] \
  || dpkg -s containernetworking-plugins >/dev/null 2>&1 || missing+=(containernetworking-plugins)
if ((${#missing[@]})); then
  echo "images: installing ${missing[*]} from Debian" >&2
  apt-get -o DPkg::Lock::Timeout=900 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
    --no-install-recommends "${missing[@]}" uidmap fuse-overlayfs >/dev/null
fi
