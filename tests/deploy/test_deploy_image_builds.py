"""The builder stage of every Dockerfile, executed without an image builder: the context the
.dockerignore lets through, the Dockerfile's own COPY and `uv sync` lines, and then a look at what
the virtual environment (the only thing the final stage receives) holds. It needs no base image
and runs in `make test`; `make images` and `make image-demo` build and run the real images."""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
from deploy_support import REPO, run
from packaging.requirements import Requirement

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(900)]

IMAGE_SERVICES = ("auth", "fetcher", "exporter", "files", "sandbox", "webhooks")
UV = REPO / ".tools" / "bin" / "uv"
DEV_ONLY = {
    "pytest",
    "ruff",
    "mypy",
    "hypothesis",
    "playwright",
    "testcontainers",
    "trustme",
    "scwadd-testing",
}


def context_files() -> list[Path]:
    """The files `docker build .` would send: .dockerignore's rules applied in order."""
    rules = [
        line
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def matches(pattern: str, relative: str) -> bool:
        if pattern == "**":
            return True
        if pattern.startswith("**/"):
            return any(fnmatch.fnmatch(part, pattern[3:]) for part in relative.split("/"))
        # A pattern naming a directory takes everything under it, as the builders read it.
        parts = relative.split("/")
        pattern = pattern.rstrip("/")
        return any(
            fnmatch.fnmatch("/".join(parts[:depth]), pattern) for depth in range(1, len(parts) + 1)
        )

    tracked = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO)
    included = []
    for relative in tracked.stdout.splitlines():
        keep = True
        for rule in rules:
            negated = rule.startswith("!")
            if matches(rule.lstrip("!"), relative):
                keep = negated
        if keep and (REPO / relative).is_file():
            included.append(Path(relative))
    return included


def builder_stage(dockerfile: Path) -> list[str]:
    """The builder stage's instructions, continuation lines joined."""
    text = dockerfile.read_text().replace("\\\n", " ")
    stage = text.split(" AS builder\n", 1)[1].split("\nFROM ", 1)[0]
    return [
        line.strip() for line in stage.splitlines() if line.strip() and not line.startswith("#")
    ]


@pytest.mark.parametrize("service", IMAGE_SERVICES)
def test_builder_stage_installs_exactly_the_locked_runtime_dependencies(
    service: str, tmp_path: Path
) -> None:
    context = tmp_path / "context"
    for relative in context_files():
        (context / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, context / relative)
    root = tmp_path / "root"  # stands for the image's /
    # The machine's own settings (certificates, proxies, uv's cache) with the project's
    # environment taken out: the builder has none.
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("UV_PROJECT_ENVIRONMENT", "VIRTUAL_ENV")
    }
    env |= {
        "PATH": f"{UV.parent}:/usr/bin:/bin",
        "UV_PYTHON": sys._base_executable,  # the slim image's python3.11
    }
    workdir = root
    for instruction in builder_stage(REPO / "services" / service / "Dockerfile"):
        keyword, _, rest = instruction.partition(" ")
        if keyword == "ENV":
            for assignment in shlex.split(rest):
                name, _, value = assignment.partition("=")
                if name == "SSL_CERT_FILE":
                    continue  # the build secret ca-bundle: this machine's own bundle
                env[name] = str(root) + value if value.startswith("/") else value
        elif keyword == "WORKDIR":
            workdir = root / rest.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY" and rest.startswith("--from="):
            continue  # uv itself: the one on this machine is the same pinned version
        elif keyword == "COPY":
            *sources, destination = shlex.split(rest)
            for source in sources:
                target = workdir / destination
                if (context / source).is_dir():
                    shutil.copytree(context / source, target, dirs_exist_ok=True)
                else:
                    shutil.copy2(context / source, target)
        elif keyword == "RUN":
            # The ca-bundle secret mount stands for this machine's bundle, already in env.
            rest = re.sub(r"^(--mount=\S+\s+)+", "", rest)
            # Byte-compiling every module costs most of the time and decides nothing checked here.
            result = run(["bash", "-c", rest], cwd=workdir, env=env | {"UV_COMPILE_BYTECODE": "0"})
            assert result.returncode == 0, f"{instruction}\n{result.stderr}"
        else:
            pytest.fail(f"unexpected builder instruction: {instruction}")

    venv = Path(env["UV_PROJECT_ENVIRONMENT"])
    installed = {}
    for dist_info in (venv / "lib" / "python3.11" / "site-packages").glob("*.dist-info"):
        name, version = dist_info.name.removesuffix(".dist-info").rsplit("-", 1)
        installed[re.sub(r"[-_.]+", "-", name).lower()] = version
    export = run(
        [UV, "export", "--frozen", "--no-dev", "--no-hashes", "--package", f"scwadd-{service}"],
        cwd=REPO,
        env=env | {"UV_PROJECT_ENVIRONMENT": str(REPO / ".venv")},
    )
    assert export.returncode == 0, export.stderr
    locked = {}
    for line in export.stdout.splitlines():
        if not re.match(r"^[A-Za-z0-9]", line):
            continue  # comments, hashes and the editable workspace members
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate():
            (specifier,) = requirement.specifier
            locked[re.sub(r"[-_.]+", "-", requirement.name).lower()] = specifier.version
    workspace = {name: version for name, version in installed.items() if name.startswith("scwadd-")}
    # The workspace libraries the Dockerfile copies (libs/core, and libs/espi where the service
    # reads ESPI), and the service itself: nothing else of ours.
    dockerfile = (REPO / "services" / service / "Dockerfile").read_text()
    libraries = set(re.findall(r"^COPY libs/(\w+) libs/\1$", dockerfile, re.MULTILINE))
    assert "core" in libraries
    assert workspace.keys() == {f"scwadd-{lib}" for lib in libraries} | {f"scwadd-{service}"}
    third_party = {name: v for name, v in installed.items() if name not in workspace}
    assert third_party == locked, "the image holds exactly the lock's runtime set for this service"
    assert not DEV_ONLY & installed.keys()
    # Installed as packages, not as links back into the build context the image leaves behind.
    for path_file in venv.glob("lib/python3.11/site-packages/*.pth"):
        assert str(tmp_path) not in path_file.read_text(), path_file.name
    result = run([venv / "bin" / "scwadd", "--help"], env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
