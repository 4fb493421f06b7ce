#!/usr/bin/env bash
# Builds the offline deployment checkers: pinned Python environments in .tools/deploy and
# .tools/deploy-hcl (from the uv.lock files under scripts/deploy/) and Debian's cloud-init.
# Idempotent and quiet when all is in place; tests/deploy calls it before its first check.
set -euo pipefail
cd "$(dirname "$0")/../.."

UV_VERSION=0.13.9
UV=.tools/bin/uv
# Two environments: checkov's fork of python-hcl2 and the upstream one share a module name.
sync_env() {
    local project=scripts/deploy/$1 env=$2
    if [[ ! -f "$env/.synced" || "$project/uv.lock" -nt "$env/.synced" ]]; then
        UV_PROJECT_ENVIRONMENT="$PWD/$env" UV_PYTHON_DOWNLOADS=never \
            "$UV" sync --quiet --frozen --project "$project" --python "${PYTHON:-python3}"
        touch "$env/.synced"
    fi
}
sync_env checkers .tools/deploy
sync_env hcl .tools/deploy-hcl

# cloud-init validates the rendered user data with the schema of the version Debian ships.
if ! command -v cloud-init >/dev/null; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "cloud-init is missing and only root can install it: apt-get install cloud-init" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cloud-init >/dev/null
fi
