"""The service images: hadolint, and the properties the issue asks of every Dockerfile."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from deploy_support import REPO, run

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(900)]

IMAGE_SERVICES = ("auth", "fetcher", "exporter", "files", "sandbox", "webhooks")
DOCKERFILES = [REPO / "services" / name / "Dockerfile" for name in IMAGE_SERVICES]


def test_every_service_package_has_a_dockerfile() -> None:
    packages = {p.parent.name for p in (REPO / "services").glob("*/pyproject.toml")}
    assert packages == set(IMAGE_SERVICES)
    assert all(path.is_file() for path in DOCKERFILES)


def test_hadolint_passes_on_every_dockerfile(deploy_tools: Path) -> None:
    result = run([deploy_tools / "hadolint", "--failure-threshold", "info", *DOCKERFILES])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_reject_a_bad_dockerfile(deploy_tools: Path, tmp_path: Path) -> None:
    """The check above can fail: an unpinned base and a root user are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text('FROM python:latest\nRUN apt-get install -y curl\nCMD ["python"]\n')
    result = run([deploy_tools / "hadolint", bad])
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # the latest tag
    assert "DL3008" in result.stdout  # unpinned apt package


@pytest.mark.parametrize("service", IMAGE_SERVICES)
def test_dockerfile_is_multi_stage_pinned_locked_and_non_root(service: str) -> None:
    text = (REPO / "services" / service / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base, "the Python base image is one pinned ARG"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base.group(1))
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", text, re.MULTILINE)
    assert [alias for _, alias in stages][:2] == ["uv", "builder"]
    assert stages[-1] == ("${PYTHON_IMAGE}", ""), "the final stage is the bare slim base"
    # Exactly this service's locked dependencies, without the dev group.
    syncs = re.findall(r"uv sync (.*)$", text, re.MULTILINE)
    assert syncs and all(
        "--frozen" in s and "--no-dev" in s and f"--package scwadd-{service}" in s for s in syncs
    )
    final = text.split("FROM ${PYTHON_IMAGE}\n")[-1]
    assert "uv" not in re.findall(r"COPY --from=(\w+)", final), "no uv in the final stage"
    assert "COPY --from=builder /opt/scwadd /opt/scwadd" in final
    assert not re.search(r"apt-get|pip install|gcc|build-essential", final)
    user = re.findall(r"^USER (\S+)$", final, re.MULTILINE)
    assert user == ["10001:10001"], "runs as the chart's non-root uid"
    assert re.search(rf'^CMD \["{service}"\]$', text, re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["scwadd"\]$', text, re.MULTILINE)


def test_dockerignore_lets_in_only_what_the_images_build_from() -> None:
    lines = [
        line
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "**", "everything is excluded first"
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "uv.lock",
        "libs/core/pyproject.toml",
        "libs/core/src/",
        "libs/espi/pyproject.toml",
        "libs/espi/README.md",
        "libs/espi/src/",
        "services/*/pyproject.toml",
        "services/*/src/",
    }


def test_make_images_without_an_engine_says_so_and_builds_nothing() -> None:
    result = run(
        ["make", "-s", "images"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "DOCKER_HOST": "unix:///nonexistent.sock"},
    )
    assert result.returncode == 0, result.stderr
    assert "no Docker engine" in result.stdout
