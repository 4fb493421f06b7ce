"""The service images: hadolint, and the properties the issue asks of every Dockerfile."""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from deploy_support import REPO, run

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(900)]

IMAGE_SERVICES = ("auth", "fetcher", "exporter", "files", "sandbox", "webhooks")
DOCKERFILES = [REPO / "services" / name / "Dockerfile" for name in IMAGE_SERVICES]
MAKEFILE = REPO / "Makefile"
SCRIPTS = REPO / "scripts" / "images"
CA_MOUNT = "type=secret,id=ca-bundle,target=/etc/ssl/certs/ca-certificates.crt,required=false"


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
    # Both bases are build arguments (stand-ins where no registry answers), uv pinned to the
    # version the Makefile bootstraps.
    uv_version = re.search(r"^UV_VERSION := (\S+)$", MAKEFILE.read_text(), re.MULTILINE)
    assert uv_version
    assert re.search(
        rf"^ARG UV_IMAGE=ghcr\.io/astral-sh/uv:{re.escape(uv_version.group(1))}$", text, re.M
    )
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", text, re.MULTILINE)
    assert stages[:2] == [("${UV_IMAGE}", "uv"), ("${PYTHON_IMAGE}", "builder")]
    assert stages[-1] == ("${PYTHON_IMAGE}", ""), "the final stage is the bare slim base"
    # Exactly this service's locked dependencies, without the dev group.
    syncs = re.findall(r"uv sync (.*)$", text, re.MULTILINE)
    assert syncs and all(
        "--frozen" in s and "--no-dev" in s and f"--package scwadd-{service}" in s for s in syncs
    )
    # Every download trusts the CA bundle given as the optional build secret, through
    # SSL_CERT_FILE; the secret is mounted, never copied into a layer.
    builder = text.split(" AS builder\n")[1].split("\nFROM ")[0]
    runs = re.findall(r"^RUN (.*?)(?<!\\)$", builder.replace("\\\n", " "), re.MULTILINE)
    assert runs and all(run.startswith(f"--mount={CA_MOUNT} ") for run in runs)
    assert "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" in builder
    final = text.split("FROM ${PYTHON_IMAGE}\n")[-1]
    assert "ca-bundle" not in final and "SSL_CERT_FILE" not in final
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
    allowed = [line[1:] for line in lines if line.startswith("!")]
    # Literal paths only: builders read wildcards and trailing slashes in re-includes
    # differently (buildah 1.28 dropped services/auth for `!services/*/src/`).
    assert not [path for path in allowed if re.search(r"[*?\[]|/$", path)]
    libraries = {"core", "espi"}
    expected = {"pyproject.toml", "uv.lock", "libs/espi/README.md"}
    expected |= {f"libs/{lib}/{part}" for lib in libraries for part in ("pyproject.toml", "src")}
    for service in IMAGE_SERVICES:
        expected |= {f"services/{service}/pyproject.toml", f"services/{service}/src"}
    assert set(allowed) == expected
    # Whatever a Dockerfile copies from the context is let in.
    for dockerfile in DOCKERFILES:
        copied = re.findall(r"^COPY (libs|services)/(\w+) ", dockerfile.read_text(), re.MULTILINE)
        for kind, name in copied:
            assert f"{kind}/{name}/src" in expected, (dockerfile, name)


def test_containers_conf_is_what_podman_needs_on_these_machines() -> None:
    conf = tomllib.loads((SCRIPTS / "containers.conf").read_text())
    assert conf["engine"]["runtime"] == "runc"
    assert conf["engine"]["cgroup_manager"] == "cgroupfs"
    assert conf["containers"]["default_ulimits"] == []
    # Used through CONTAINERS_CONF by every script, never written under /etc.
    env = (SCRIPTS / "env.sh").read_text()
    assert 'export CONTAINERS_CONF="$REPO/scripts/images/containers.conf"' in env
    assert not [p.name for p in SCRIPTS.iterdir() if "/etc/containers" in p.read_text()]


def build_commands(*services: str, **env: str) -> list[str]:
    result = run(
        ["bash", SCRIPTS / "build.sh", *services],
        cwd=REPO,
        env={
            "PATH": "/usr/bin:/bin",
            "DOCKER_HOST": "unix:///nonexistent.sock",
            "UV_VERSION": "0.13.9",
            "IMAGE_TAG": "t1",
            "IMAGE_DRY_RUN": "1",
        }
        | env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_make_images_without_a_docker_engine_builds_with_buildah_on_debian_stand_ins() -> None:
    commands = build_commands(*IMAGE_SERVICES, SSL_CERT_FILE="/etc/ssl/certs/ca-certificates.crt")
    assert len(commands) == len(IMAGE_SERVICES)
    for service, command in zip(IMAGE_SERVICES, commands, strict=True):
        assert command.startswith("buildah build --layers ")
        assert "--build-arg PYTHON_IMAGE=localhost/scwadd-ci/python:3.11-bookworm" in command
        assert "--build-arg UV_IMAGE=localhost/scwadd-ci/uv:0.13.9" in command
        assert "--secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt" in command
        assert command.endswith(f"-f services/{service}/Dockerfile -t scwadd-{service}:t1 .")


def test_make_images_with_docker_keeps_the_registry_bases_and_passes_proxies() -> None:
    (command,) = build_commands(
        "files",
        IMAGE_ENGINE="docker",
        IMAGE_PREFIX="ghcr.io/acme/",
        HTTPS_PROXY="http://proxy.internal:3128",
        SSL_CERT_FILE="/nonexistent/bundle.pem",
    )
    assert command.startswith("docker build ")
    assert "PYTHON_IMAGE" not in command and "UV_IMAGE" not in command
    assert "--build-arg HTTPS_PROXY=http://proxy.internal:3128" in command
    assert "--secret" not in command, "no bundle file, no secret"
    assert command.endswith("-t ghcr.io/acme/scwadd-files:t1 .")


def test_make_images_refuses_an_unknown_base_choice() -> None:
    result = run(
        ["bash", SCRIPTS / "build.sh", "auth"],
        cwd=REPO,
        env={
            "PATH": "/usr/bin:/bin",
            "UV_VERSION": "0.13.9",
            "IMAGE_TAG": "t1",
            "IMAGE_BASES": "alpine",
            "IMAGE_ENGINE": "buildah",
        },
    )
    assert result.returncode == 2
    assert "IMAGE_BASES is auto, registry or debian" in result.stderr


def test_stand_in_bases_are_debian_packages_and_the_pinned_uv_wheel() -> None:
    bases = (SCRIPTS / "bases.sh").read_text()
    assert "--variant=minbase" in bases
    assert "python3,python3-venv,ca-certificates,passwd" in bases
    assert "ENV PATH=$SYSTEM_PATH" in bases and "/usr/sbin" in bases
    assert "uv==$UV_VERSION" in bases and "FROM scratch" in bases


def test_ci_builds_the_images_and_runs_the_containerised_demo_after_the_tests() -> None:
    steps = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip().startswith("make ")
    ]
    assert steps.index("make test") < steps.index("make images") < steps.index("make image-demo")
    makefile = MAKEFILE.read_text()
    assert re.search(r"^images:", makefile, re.MULTILINE)
    assert re.search(r"^image-demo: setup$", makefile, re.MULTILINE)
    assert "scripts/images/tools.sh" in makefile


def load_pod_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("image_demo_pod", SCRIPTS / "pod.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def pod_runner(deploy_tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """scripts/images/pod.py with its work directory under tmp_path, the chart rendered."""
    pod = load_pod_runner()
    monkeypatch.setattr(pod, "WORK", tmp_path)
    for sub in ("env", "logs", "volumes"):
        (tmp_path / sub).mkdir()
    values_file, existing, driver_env = pod.generate_inputs("t1")
    cluster = pod.Cluster(pod.render(values_file), existing)
    runner = pod.Pod(cluster, {"nats": "localhost/nats-s", "postgresql": "localhost/pg-s"})
    return pod, cluster, runner, driver_env


def test_image_demo_runs_every_rendered_container_with_the_charts_security_context(
    pod_runner: Any, tmp_path: Path
) -> None:
    _, cluster, runner, _ = pod_runner
    components = [
        w["metadata"]["labels"]["app.kubernetes.io/component"] for w in cluster.workloads()
    ]
    assert components == ["nats", "postgresql", "sandbox", "auth", "fetcher", "exporter", "files"]
    seen_images = set()
    for workload in cluster.workloads():
        name = workload["metadata"]["name"]
        spec = workload["spec"]["template"]["spec"]
        runner.volume_sources_cache[name] = runner.volume_sources(workload)
        writable_volumes = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        writable_volumes |= {
            c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])
        }
        for container in spec.get("initContainers", []) + spec["containers"]:
            args = runner.run_args(workload, container, f"{name}-{container['name']}", name)
            joined = " ".join(args)
            assert "--user 10001:10001" in joined and "--group-add 10001" in joined
            assert "--read-only --read-only-tmpfs=false" in joined
            assert "--cap-drop=ALL" in args and "no-new-privileges" in args
            assert "--privileged" not in args and not any("--cap-add" in a for a in args)
            mounts = [args[i + 1] for i, a in enumerate(args) if a == "--mount"]
            destinations = {}
            for mount in mounts:
                options = dict(o.split("=", 1) for o in mount.split(","))
                destinations[options["destination"]] = options.get("readonly") == "true"
            assert destinations.pop("/etc/hosts") is True
            # Exactly the chart's mounts, writable exactly where the chart gives a volume to write.
            expected = {
                m["mountPath"]: m["name"] not in writable_volumes
                for m in container.get("volumeMounts", [])
            }
            assert destinations == expected, f"{name}/{container['name']}"
            # The image, then the rendered args: the chart's own, or a stand-in for a public one.
            seen_images.add(args[len(args) - 1 - len(container.get("args", []))])
    assert seen_images == {
        "localhost/nats-s",
        "localhost/pg-s",
        *(f"localhost/scwadd-{s}:t1" for s in ("sandbox", "auth", "fetcher", "exporter", "files")),
    }


def test_image_demo_environment_is_the_rendered_one(pod_runner: Any) -> None:
    pod, cluster, _, _ = pod_runner
    (auth,) = [w for w in cluster.workloads() if w["metadata"]["name"] == "scwadd-auth"]
    container = auth["spec"]["template"]["spec"]["containers"][0]
    env = pod.resolve_env(cluster, container, "scwadd-auth")
    assert list(env) == [e["name"] for e in container["env"]], "every rendered variable, in order"
    database = cluster.secrets["scwadd-database"]["auth-url"].decode()
    assert env["DATABASE_URL"] == database
    assert "@scwadd-postgresql:5432/auth" in database
    assert env["PGE_AUTHORIZE_URL"] == "https://scwadd-sandbox:9443/myAuthorization"
    assert env["PUBLIC_BASE_URL"] == "https://scwadd.example.com"  # the chart's default
    assert env["PGE_CA_FILE"] == "/etc/scwadd/pge-ca/ca.crt"
    assert env["NATS_URL"] == "nats://scwadd-nats:4222"
    # Every Service name (and its cluster-domain forms) is the pod's loopback.
    hosts = cluster.hosts_file()
    for service in cluster.of_kind("Service"):
        assert f"127.0.0.1\t{service['metadata']['name']}.scwadd.svc.cluster.local\n" in hosts
    routes = {(r["path"], r["service"], r["port"]) for r in cluster.ingress_routes()}
    assert ("/", "scwadd-auth", 8080) in routes
    assert ("/output", "scwadd-files", 8083) in routes
    assert ("/espi/notify", "scwadd-fetcher", 8081) in routes


def test_image_demo_expands_references_and_refuses_what_it_cannot_run() -> None:
    pod = load_pod_runner()
    cluster = pod.Cluster([], {"s": {"k": b"secret"}})
    container = {
        "env": [
            {"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "B", "value": "x:$(A)@$(MISSING)"},
            {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ]
    }
    env = pod.resolve_env(cluster, container, "scwadd-nats-0")
    # Kubernetes leaves a reference to an undefined variable as written.
    assert env == {"A": "secret", "B": "x:secret@$(MISSING)", "C": "scwadd-nats-0"}
    with pytest.raises(ValueError, match="unsupported valueFrom"):
        pod.resolve_env(
            cluster, {"env": [{"name": "R", "valueFrom": {"resourceFieldRef": {}}}]}, "p"
        )
    assert pod.quantity("256Mi") == "256m" and pod.quantity("1Gi") == "1g"
    with pytest.raises(ValueError):
        pod.quantity("1.5Gi")
