"""Lints, schema-checks and renders the chart with Helm's own engine (helm-python-sdk).

Runs in the checker environment (.tools/deploy), not the project's, so the tests call it as a
subprocess: ``python chart_tool.py CHART OUT_DIR VALUES...`` (YAML or JSON files,
merged in order as Helm merges repeated ``-f``). It writes every rendered
Kubernetes object to its own YAML file under OUT_DIR/manifests (what kubernetes-validate and
checkov read), all of them as OUT_DIR/objects.json (what the tests assert on), and Helm's lint
report as OUT_DIR/lint.json. Exit 0 when it rendered; a lint, schema or render error exits 1
with Helm's message on stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

RELEASE = "scwadd"
NAMESPACE = "scwadd"
KUBE_VERSION = "v1.33.4"


def render(chart_dir: Path, values: dict[str, Any], out_dir: Path) -> int:
    report = helm.lint(
        chart_dir, values, strict=True, namespace=NAMESPACE, kube_version=KUBE_VERSION
    )
    (out_dir / "lint.json").write_text(json.dumps(report, indent=2))
    if report.get("errors"):
        print("helm lint: " + "; ".join(report["errors"]), file=sys.stderr)
        return 1
    chart = helm.Chart.load(chart_dir)
    try:
        chart.validate_schema(values)
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    except helm.HelmError as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    manifests = out_dir / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    objects: list[dict[str, Any]] = []
    for template, text in sorted(rendered.items()):
        if not template.endswith((".yaml", ".yml")):
            continue  # NOTES.txt
        for document in yaml.safe_load_all(text):
            if not document:
                continue
            document.setdefault("metadata", {}).setdefault("annotations", None)
            if document["metadata"]["annotations"] is None:
                del document["metadata"]["annotations"]
            index = len(objects)
            name = f"{index:03d}-{document['kind'].lower()}-{document['metadata']['name']}.yaml"
            (manifests / name).write_text(yaml.safe_dump(document, sort_keys=False))
            objects.append({"template": template, "file": name, "object": document})
    (out_dir / "objects.json").write_text(json.dumps(objects, indent=2))
    notes = next(
        (text for template, text in rendered.items() if template.endswith("NOTES.txt")), ""
    )
    (out_dir / "NOTES.txt").write_text(notes)
    return 0


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def main(argv: list[str]) -> int:
    chart_dir, out_dir, *values_files = (Path(arg) for arg in argv)
    values: dict[str, Any] = {}
    for values_file in values_files:
        values = merge(values, yaml.safe_load(values_file.read_text()) or {})
    out_dir.mkdir(parents=True, exist_ok=True)
    return render(chart_dir, values, out_dir)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
