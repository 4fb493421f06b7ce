#!/usr/bin/env bash
# Stand-in base images built from Debian packages, for machines that reach Debian's archive and
# PyPI but no registry of images (CI, these machines):
#   python      mmdebstrap minbase bookworm + python3, python3-venv, ca-certificates, passwd:
#               Debian's python3.11 in place of python:3.11-slim-bookworm
#   uv          the pinned uv binary from its PyPI wheel, alone in a scratch image
#   nats        bookworm's nats-server, for the containerised demo
#   postgresql  bookworm's PostgreSQL with an entrypoint that honours the variables the chart
#               gives the official image (POSTGRES_USER, POSTGRES_PASSWORD_FILE, PGDATA, ...)
# Each is built once and kept; `make image-bases-clean` removes them.
# Usage: bases.sh python uv nats postgresql
set -euo pipefail
source "$(dirname "$0")/env.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
MIRRORS=(
  "deb http://deb.debian.org/debian bookworm main"
  "deb http://deb.debian.org/debian bookworm-updates main"
  "deb http://deb.debian.org/debian-security bookworm-security main"
)
SYSTEM_PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# A minbase bookworm root with the given packages, imported as an image. The PATH includes the
# sbin directories: groupadd and useradd live there, and an imported image has no PATH at all.
debian_image() {
  local tag="$1" packages="$2"
  shift 2
  echo "bases: $tag (mmdebstrap: $packages)" >&2
  mmdebstrap --quiet --variant=minbase --include="$packages" \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
    "$@" bookworm "$work/root.tar" "${MIRRORS[@]}" </dev/null
  "$IMAGES_CLI" import --quiet "${CHANGES[@]}" "$work/root.tar" "$tag" >/dev/null
  rm -f "$work/root.tar"
}

for base in "$@"; do
  case "$base" in
    python)
      image_exists "$STANDIN_PYTHON" && continue
      CHANGES=(--change "ENV PATH=$SYSTEM_PATH" --change 'CMD ["python3"]')
      debian_image "$STANDIN_PYTHON" python3,python3-venv,ca-certificates,passwd
      ;;
    uv)
      image_exists "$STANDIN_UV" && continue
      echo "bases: $STANDIN_UV (uv $UV_VERSION from its PyPI wheel)" >&2
      "${PYTHON:-python3}" -m pip download --quiet --no-deps --only-binary=:all: \
        --dest "$work/wheel" "uv==$UV_VERSION"
      mkdir "$work/uv"
      "${PYTHON:-python3}" - "$work/wheel" "$work/uv/uv" <<'PY'
import sys, zipfile, pathlib
(wheel,) = pathlib.Path(sys.argv[1]).glob("uv-*.whl")
with zipfile.ZipFile(wheel) as archive:
    (member,) = [n for n in archive.namelist() if n.endswith(".data/scripts/uv")]
    pathlib.Path(sys.argv[2]).write_bytes(archive.read(member))
pathlib.Path(sys.argv[2]).chmod(0o755)
PY
      printf 'FROM scratch\nCOPY uv /uv\n' >"$work/uv/Containerfile"
      if [ "$IMAGE_ENGINE" = docker ]; then
        docker build --quiet -t "$STANDIN_UV" -f "$work/uv/Containerfile" "$work/uv" >/dev/null
      else
        buildah build --quiet -t "$STANDIN_UV" -f "$work/uv/Containerfile" "$work/uv" >/dev/null
      fi
      ;;
    nats)
      image_exists "$STANDIN_NATS" && continue
      CHANGES=(--change "ENV PATH=$SYSTEM_PATH" --change 'ENTRYPOINT ["nats-server"]')
      debian_image "$STANDIN_NATS" nats-server
      ;;
    postgresql)
      image_exists "$STANDIN_POSTGRESQL" && continue
      CHANGES=(
        --change "ENV PATH=/usr/lib/postgresql/15/bin:$SYSTEM_PATH"
        --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]'
        --change 'CMD ["postgres"]'
      )
      # No cluster at install time: the entrypoint makes one in PGDATA, as the official image.
      debian_image "$STANDIN_POSTGRESQL" postgresql \
        --essential-hook='mkdir -p "$1"/etc/postgresql-common && echo "create_main_cluster = false" > "$1"/etc/postgresql-common/createcluster.conf' \
        --customize-hook="upload $REPO/scripts/images/postgresql-entrypoint.sh /usr/local/bin/docker-entrypoint.sh" \
        --customize-hook='chmod 0755 "$1"/usr/local/bin/docker-entrypoint.sh'
      ;;
    *) echo "bases: unknown base image $base" >&2; exit 2 ;;
  esac
done
