"""Terraform: every file parses (python-hcl2), checkov passes, the security properties the issue
asks for are in place, and the user data it builds is valid cloud-config that deploys a chart
configuration the chart itself accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from deploy_support import (
    CHART,
    CHECKOV_ENV,
    HCL_PYTHON,
    TERRAFORM,
    load_rendered,
    render_chart,
    render_templatefile,
    run,
    template_references,
    yaml_documents,
)

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(900)]

TF_FILES = sorted(TERRAFORM.glob("*.tf"))
TEMPLATES = {
    "cloud-config": TERRAFORM / "templates" / "cloud-config.yaml.tftpl",
    "bootstrap": TERRAFORM / "templates" / "bootstrap.sh.tftpl",
}


def unquote(value: Any) -> Any:
    """python-hcl2 keeps string literals quoted; compare them without the quotes."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, dict):
        return {
            unquote(k): unquote(v)
            for k, v in value.items()
            if k not in ("__comments__", "__is_block__")
        }
    if isinstance(value, list):
        return [unquote(v) for v in value]
    return value


@pytest.fixture(scope="module")
def hcl(deploy_tools: Path) -> dict[str, Any]:
    paths = [*TF_FILES, TERRAFORM / "terraform.tfvars.example"]
    result = run([HCL_PYTHON, Path(__file__).with_name("hcl_tool.py"), *paths])
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = unquote(json.loads(result.stdout))
    return parsed


def blocks(hcl: dict[str, Any], kind: str) -> dict[str, Any]:
    """``resource``/``data`` blocks as {"type.name": body}."""
    found = {}
    for parsed in hcl.values():
        for entry in parsed.get(kind, []):
            for type_, named in entry.items():
                for name, body in named.items():
                    found[f"{type_}.{name}"] = body
    return found


def variables(hcl: dict[str, Any]) -> dict[str, Any]:
    return {name: body for entry in hcl["variables.tf"]["variable"] for name, body in entry.items()}


def test_every_tf_file_parses(hcl: dict[str, Any]) -> None:
    assert {p.name for p in TF_FILES} == {"versions.tf", "variables.tf", "main.tf", "outputs.tf"}
    assert set(hcl) == {p.name for p in TF_FILES} | {"terraform.tfvars.example"}


def test_python_hcl2_does_reject_broken_hcl(deploy_tools: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.tf"
    broken.write_text('resource "aws_eip" "x" {\n  domain = "vpc"\n')
    result = run([HCL_PYTHON, Path(__file__).with_name("hcl_tool.py"), broken])
    assert result.returncode == 1
    assert "broken.tf" in result.stderr


def test_providers_and_terraform_are_pinned(hcl: dict[str, Any]) -> None:
    terraform = hcl["versions.tf"]["terraform"][0]
    assert terraform["required_version"]
    providers = terraform["required_providers"][0]
    assert set(providers) == {"aws", "cloudinit"}
    for provider in providers.values():
        assert re.fullmatch(r"= \d+\.\d+\.\d+", provider["version"]), provider


def test_every_variable_is_typed_described_and_the_example_is_complete(
    hcl: dict[str, Any],
) -> None:
    declared = variables(hcl)
    for name, body in declared.items():
        assert body.get("type"), f"{name} has no type"
        assert len(body.get("description", "")) > 10, f"{name} has no description"
    validated = {name for name, body in declared.items() if body.get("validation")}
    # Everything that has a shape is validated; free-form names and tags are not.
    assert set(declared) - validated == {"ssh_key_name", "deletion_protection", "tags"}
    example = hcl["terraform.tfvars.example"]
    assert set(example) <= set(declared), "the example sets only declared variables"
    required = {name for name, body in declared.items() if "default" not in body}
    assert required <= set(example), f"the example misses {required - set(example)}"


def test_checkov_passes_on_terraform(deploy_tools: Path) -> None:
    result = run(
        [
            deploy_tools / "checkov",
            "-d",
            TERRAFORM,
            "--framework",
            "terraform",
            "--skip-download",
            "--quiet",
            "--compact",
            "--output",
            "json",
        ],
        env=CHECKOV_ENV,
    )
    report = json.loads(result.stdout)
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] > 40
    # A skip is allowed only with its reason written next to it.
    for path in TF_FILES:
        for line in path.read_text().splitlines():
            if "checkov:skip=" in line:
                assert re.search(r"checkov:skip=CKV2?_AWS_\d+:\S.{10,}", line), line


def test_instance_is_hardened_and_keeps_its_address(hcl: dict[str, Any]) -> None:
    resources = blocks(hcl, "resource")
    instance = resources["aws_instance.scwadd"]
    assert instance["metadata_options"][0]["http_tokens"] == "required"
    root = instance["root_block_device"][0]
    assert root["encrypted"] is True
    assert "data.cloudinit_config.bootstrap.rendered" in instance["user_data_base64"]
    association = resources["aws_eip_association.scwadd"]
    assert "aws_eip.scwadd.id" in association["allocation_id"]
    assert "aws_eip.scwadd.public_ip" in resources["aws_route53_record.scwadd"]["records"][0]
    assert "var.route53_zone_id == null ? 0 : 1" in resources["aws_route53_record.scwadd"]["count"]


def test_security_group_opens_80_and_443_and_ssh_only_on_request(hcl: dict[str, Any]) -> None:
    resources = blocks(hcl, "resource")
    ingress = {
        name: body
        for name, body in resources.items()
        if name.startswith("aws_vpc_security_group_ingress_rule.")
    }
    public = {body["from_port"] for body in ingress.values() if body["cidr_ipv4"] == "0.0.0.0/0"}
    assert public == {80, 443}
    ssh = ingress["aws_vpc_security_group_ingress_rule.ssh"]
    assert ssh["from_port"] == 22 and "var.ssh_ingress_cidr" in ssh["cidr_ipv4"]
    assert "var.ssh_ingress_cidr == null ? 0 : 1" in ssh["count"]
    assert variables(hcl)["ssh_ingress_cidr"]["default"] is None


def test_instance_role_may_only_read_its_ssm_parameters(hcl: dict[str, Any]) -> None:
    policy = blocks(hcl, "data")["aws_iam_policy_document.read_secrets"]
    statements = {s["sid"]: s for s in policy["statement"]}
    assert set(statements) == {"ReadScwaddSecrets", "DecryptThroughSsmOnly"}
    read = statements["ReadScwaddSecrets"]
    assert sorted(read["actions"]) == ["ssm:GetParameter", "ssm:GetParameters"]
    assert read["resources"] == ["${local.ssm_parameter_arn}/*"]
    decrypt = statements["DecryptThroughSsmOnly"]
    assert decrypt["actions"] == ["kms:Decrypt"]
    assert decrypt["condition"][0]["variable"] == "kms:ViaService"


def test_outputs_are_what_pge_needs(hcl: dict[str, Any]) -> None:
    outputs = {name for entry in hcl["outputs.tf"]["output"] for name in entry}
    assert {"public_url", "redirect_uri", "notification_uri"} <= outputs
    local_values = hcl["main.tf"]["locals"][0]
    assert local_values["redirect_uri"] == "${local.public_url}/OAuthCallback"
    assert local_values["notification_uri"] == "${local.public_url}/espi/notify"


def example_template_variables(hcl: dict[str, Any]) -> dict[str, str]:
    """The values templatefile would get for terraform.tfvars.example."""
    declared = variables(hcl)
    example = hcl["terraform.tfvars.example"]
    passed = hcl["main.tf"]["locals"][0]["bootstrap_vars"]
    values = {}
    for key, expression in passed.items():
        match = re.fullmatch(r"\$\{var\.([a-z0-9_]+)\}", expression)
        assert match, f"bootstrap_vars.{key} must be a plain variable: {expression}"
        variable = match.group(1)
        values[key] = str(example.get(variable, declared[variable].get("default")))
    return values


@pytest.fixture(scope="module")
def user_data(hcl: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    values = example_template_variables(hcl)
    out = tmp_path_factory.mktemp("user-data")
    rendered = {}
    for name, template in TEMPLATES.items():
        rendered[name] = out / template.name.removesuffix(".tftpl")
        rendered[name].write_text(render_templatefile(template.read_text(), values))
    return rendered


def test_templates_use_exactly_the_variables_passed_to_them(hcl: dict[str, Any]) -> None:
    passed = set(hcl["main.tf"]["locals"][0]["bootstrap_vars"])
    used = set().union(*(template_references(t.read_text()) for t in TEMPLATES.values()))
    assert used == passed
    cloudinit = blocks(hcl, "data")["cloudinit_config.bootstrap"]
    parts = [(p["content_type"], p["content"]) for p in cloudinit["part"]]
    assert [kind for kind, _ in parts] == ["text/cloud-config", "text/x-shellscript"]
    for _, content in parts:
        assert "templatefile(" in content and "local.bootstrap_vars" in content


def test_rendered_cloud_config_passes_cloud_init_schema(user_data: dict[str, Path]) -> None:
    result = run(["cloud-init", "schema", "--config-file", user_data["cloud-config"]])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


def test_cloud_init_schema_does_reject_a_broken_config(deploy_tools: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("#cloud-config\nwrite_files:\n  - path: /x\n    permissions: 0600\n")
    result = run(["cloud-init", "schema", "--config-file", broken])
    assert result.returncode != 0


def test_bootstrap_script_is_valid_bash_with_bounded_retries(user_data: dict[str, Path]) -> None:
    result = run(["bash", "-n", user_data["bootstrap"]])
    assert result.returncode == 0, result.stderr
    script = user_data["bootstrap"].read_text()
    assert "set -euo pipefail" in script
    assert re.search(r"^retry 5 \d+ install_k3s$", script, re.MULTILINE)
    assert 'INSTALL_K3S_VERSION="$K3S_VERSION"' in script
    assert re.search(r"raw\.githubusercontent\.com/k3s-io/k3s/\$K3S_VERSION/install\.sh", script)
    # Secrets go from SSM to Kubernetes through files, never through arguments or logs.
    assert "--with-decryption" in script
    assert "set -x" not in script
    assert re.search(r"trap 'rm -rf \"\$secrets_dir\"' EXIT", script)


def test_user_data_deploys_a_chart_configuration_the_chart_accepts(
    user_data: dict[str, Path], deploy_tools: Path, tmp_path: Path
) -> None:
    (cloud_config,) = yaml_documents(user_data["cloud-config"])
    files = {f["path"]: f for f in cloud_config["write_files"]}
    assert all(f["permissions"] == "0600" for f in files.values())
    env = files["/etc/scwadd/bootstrap.env"]["content"]
    assert "K3S_VERSION='v1.33.4+k3s1'" in env
    manifest = tmp_path / "scwadd-helmchart.yaml"
    manifest.write_text(files["/etc/scwadd/manifests/30-scwadd.yaml"]["content"])
    (helm_chart,) = yaml_documents(manifest)
    assert helm_chart["kind"] == "HelmChart" and helm_chart["apiVersion"] == "helm.cattle.io/v1"
    assert helm_chart["spec"]["chart"] == "oci://ghcr.io/example/charts/scwadd"
    values = tmp_path / "values.yaml"
    values.write_text(helm_chart["spec"]["valuesContent"])
    result = render_chart(tmp_path / "out", values)
    assert result.returncode == 0, result.stderr
    rendered = load_rendered("terraform", tmp_path / "out")
    # Only the generated database password is the chart's own; every other secret is the
    # bootstrap's.
    created_by_chart = {s["metadata"]["name"] for s in rendered.of_kind("Secret")}
    assert created_by_chart == {"scwadd-postgresql", "scwadd-database"}
    assert "https://scwadd.example.com/OAuthCallback" in rendered.notes
    # The Secrets bootstrap.sh creates are exactly those the chart is told to use.
    script = user_data["bootstrap"].read_text()
    created = set(re.findall(r"apply_secret (?:generic|tls) (\S+)", script))
    referenced = {v["existingSecret"] for v in unquote_yaml(values)["secrets"].values()}
    assert created == referenced
    issuer = tmp_path / "issuer.yaml"
    issuer.write_text(files["/etc/scwadd/manifests/20-cluster-issuer.yaml"]["content"])
    (cluster_issuer,) = yaml_documents(issuer)
    assert cluster_issuer["spec"]["acme"]["email"] == "operator@example.com"
    assert (
        rendered.get("Ingress", "scwadd")["metadata"]["annotations"][
            "cert-manager.io/cluster-issuer"
        ]
        == cluster_issuer["metadata"]["name"]
    )


def unquote_yaml(path: Path) -> dict[str, Any]:
    (document,) = yaml_documents(path)
    assert isinstance(document, dict)
    return document


def test_chart_ci_value_sets_are_all_checked() -> None:
    assert {p.name for p in (CHART / "ci").glob("*.yaml")} == {
        f"{name}-values.yaml"
        for name in (
            "default",
            "ha-nats",
            "external-db",
            "ingress-nginx",
            "existing-secrets",
            "webhooks",
        )
    }
