"""Fixtures of the offline deployment checks.

The checkers (Helm's engine, kubernetes-validate, checkov, hadolint, python-hcl2, cloud-init)
live outside the project's environment: scripts/deploy/tools.sh builds them from their own
locks, once, and the tests call them as programs. Every chart value set is rendered once per
session; the tests then read the rendered objects as JSON.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import bcrypt
import pytest
import trustme
from deploy_support import (
    CHART,
    REPO,
    TOOLS_BIN,
    VALUE_SETS,
    Rendered,
    load_rendered,
    render_chart,
    run,
)


@pytest.fixture(scope="session")
def deploy_tools() -> Path:
    """The checker environments, built from scripts/deploy/*/uv.lock on first use."""
    result = run(["bash", REPO / "scripts" / "deploy" / "tools.sh"])
    assert result.returncode == 0, f"building the deploy checkers failed:\n{result.stderr}"
    return TOOLS_BIN


@pytest.fixture(scope="session")
def generated_secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Chart values for every secret, generated now: no key material lives in the repository."""
    ca = trustme.CA()
    client = ca.issue_cert("scwadd-client.example.com")
    htpasswd = bcrypt.hashpw(b"correct horse battery", bcrypt.gensalt(rounds=4)).decode()
    values = {
        "secrets": {
            "pge": {
                "clientId": "5c3a1d0e9b7f4a26a8e1d2c3b4a59687",
                "clientSecret": os.urandom(16).hex(),
            },
            "pgeClientCertificate": {
                "certificate": client.cert_chain_pems[0].bytes().decode(),
                "key": client.private_key_pem.bytes().decode(),
            },
            "sealing": {"keys": "k1:" + base64.b64encode(os.urandom(32)).decode()},
            "htpasswd": {"entries": f"operator:{htpasswd}\n"},
        }
    }
    path = tmp_path_factory.mktemp("values") / "secrets.json"
    path.write_text(json.dumps(values))
    return path


@pytest.fixture(scope="session")
def rendered(
    deploy_tools: Path, generated_secrets: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Rendered]:
    """Every value set under helm/scwadd/ci, rendered once with the generated secrets."""
    results = {}
    root = tmp_path_factory.mktemp("rendered")
    for name in VALUE_SETS:
        out_dir = root / name
        result = render_chart(out_dir, CHART / "ci" / f"{name}-values.yaml", generated_secrets)
        assert result.returncode == 0, f"{name}: the chart did not render:\n{result.stderr}"
        results[name] = load_rendered(name, out_dir)
    return results
