"""Helpers of the offline deployment checks: paths, running the checkers, rendered objects, and
Terraform's templatefile for the subset the templates use."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "scwadd"
TERRAFORM = REPO / "terraform"
TOOLS_BIN = REPO / ".tools" / "deploy" / "bin"
HCL_PYTHON = REPO / ".tools" / "deploy-hcl" / "bin" / "python"
CHART_TOOL = Path(__file__).with_name("chart_tool.py")
# The Kubernetes minor of the k3s release Terraform installs (terraform/variables.tf).
KUBERNETES_VERSION = "1.33.0"
VALUE_SETS = (
    "default",
    "ha-nats",
    "external-db",
    "ingress-nginx",
    "existing-secrets",
    "webhooks",
)
SERVICES = ("auth", "fetcher", "exporter", "files")
# checkov offline: no policy download from its vendor, no version check against PyPI.
CHECKOV_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/tmp",
    "BC_SKIP_MAPPING": "TRUE",
    "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE",
}


def run(args: list[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """A checker run whose output is kept for the assertion message."""
    return subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, check=False, **kwargs
    )


@dataclass(frozen=True)
class Rendered:
    """One value set rendered by Helm's engine."""

    name: str
    directory: Path
    objects: list[dict[str, Any]]
    lint: dict[str, Any]
    notes: str

    @property
    def manifests(self) -> Path:
        return self.directory / "manifests"

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        matches = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert matches, f"{self.name}: no {kind} named {name}"
        return matches[0]

    def has(self, kind: str, name: str) -> bool:
        return any(o["metadata"]["name"] == name for o in self.of_kind(kind))


def render_chart(
    out_dir: Path, *values_files: Path, tools: Path = TOOLS_BIN
) -> subprocess.CompletedProcess[str]:
    return run([tools / "python", CHART_TOOL, CHART, out_dir, *values_files])


def load_rendered(name: str, out_dir: Path) -> Rendered:
    return Rendered(
        name=name,
        directory=out_dir,
        objects=[entry["object"] for entry in json.loads((out_dir / "objects.json").read_text())],
        lint=json.loads((out_dir / "lint.json").read_text()),
        notes=(out_dir / "NOTES.txt").read_text(),
    )


TEMPLATE_REFERENCE = re.compile(r"(?<!\$)\$\{([^}]*)\}")


def render_templatefile(text: str, variables: dict[str, str]) -> str:
    """Terraform's templatefile for the subset the templates use: ``${name}`` references and
    ``$${`` escapes. Anything else (expressions, ``%{`` directives) is refused, so a template
    that starts needing Terraform proper fails here instead of passing unchecked."""
    assert "%{" not in text.replace("%%{", ""), "template directives are not supported"

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", name), (
            f"unsupported template expression ${{{name}}}"
        )
        assert name in variables, f"template references ${{{name}}}, which is not passed to it"
        return variables[name]

    return TEMPLATE_REFERENCE.sub(substitute, text).replace("$${", "${").replace("%%{", "%{")


def template_references(text: str) -> set[str]:
    return set(TEMPLATE_REFERENCE.findall(text))


def yaml_documents(path: Path, tools: Path = TOOLS_BIN) -> list[Any]:
    """YAML read by the checker environment's PyYAML (the project's own has none)."""
    script = (
        "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))"
    )
    result = run([tools / "python", "-c", script, path])
    assert result.returncode == 0, result.stderr
    documents: list[Any] = json.loads(result.stdout)
    return documents
