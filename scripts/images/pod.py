"""The containerised demo: the chart rendered for its default values, run as one podman pod.

``make image-demo`` runs it with the project's Python. It generates what an operator would
create before installing (the registration's secrets, the sandbox's development PKI, the
operator's htpasswd), renders helm/scwadd with Helm's own engine (tests/deploy/chart_tool.py)
for the chart's defaults plus scripts/images/demo-values.yaml, and then runs every rendered
Deployment and StatefulSet the way a kubelet would, inside one pod with no network but its
loopback:

* each container with its rendered securityContext (uid and gid, fsGroup as a supplementary
  group, read-only root filesystem with only its rendered volumes writable, capabilities
  dropped, no privilege escalation);
* its environment resolved from the rendered values, Secrets, ConfigMaps and field references,
  ``$(VAR)`` expanded as Kubernetes does;
* Secret and ConfigMap volumes as read-only files with their modes, emptyDir as tmpfs,
  volumeClaimTemplates as directories owned by the fsGroup;
* init containers run to completion (retried, as a kubelet restarts them), then the containers,
  each waited on by its own readiness probe; every rendered Service name resolves to the pod's
  loopback through a generated /etc/hosts.

The public NATS and PostgreSQL images cannot be pulled here; the Debian-built stand-ins
(scripts/images/bases.sh) take their place with the same arguments, environment and mounts.
Then scripts/images/drive.py, in a container of the same pod, plays the customer and the
operator through the rendered Ingress routes: consent, CSV, revocation, operator download.

Usage: pod.py --tag TAG --nats-image IMAGE --postgresql-image IMAGE [--keep]
Exit status 0 when the demo passed; the containers' logs are under .run/image-demo/logs.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bcrypt
from scwadd_core import devpki

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / ".run" / "image-demo"
POD = "scwadd-demo"
NAMESPACE = "scwadd"
CHECKERS = REPO / ".tools" / "deploy" / "bin" / "python"
# Start order: the bus and the database, the custodian, then the services.
ORDER = ("nats", "postgresql", "sandbox", "auth", "fetcher", "exporter", "files")
# The fetcher's HTTP port as the chart sets it (helm/scwadd/values.yaml fetcher.port).
FETCHER_PORT = 8081
DEADLINE = 300.0  # seconds any one container may take to become ready
OPERATOR = "operator"

Obj = dict[str, Any]


# The programs run here are podman, nsenter and the checkers, with arguments built from the
# rendered chart: nothing comes from outside the repository.
def podman(
    *args: str, check: bool = True, capture: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        ["podman", *args],  # noqa: S607
        check=check,
        capture_output=capture,
        text=True,
    )


# -- what an operator creates before `helm install` ----------------------------------------------


def generate_inputs(tag: str) -> tuple[Path, dict[str, dict[str, bytes]], dict[str, str]]:
    """The generated values file, the Secrets the values name as existing, the driver's env."""
    pki = devpki.ensure_dev_pki(
        WORK / "pki", hosts=("scwadd-sandbox", "localhost", "127.0.0.1", "::1")
    )
    client_id = secrets.token_hex(16)  # PG&E client ids are 32 characters
    client_secret = secrets.token_urlsafe(24)
    password = secrets.token_urlsafe(12)
    htpasswd = f"{OPERATOR}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()}\n"
    public_base_url = "https://scwadd.example.com"  # the chart's default publicBaseUrl
    values = {
        "image": {"registry": "localhost", "tag": tag, "pullPolicy": "Never"},
        "secrets": {
            "pge": {"clientId": client_id, "clientSecret": client_secret},
            "pgeClientCertificate": {
                "certificate": pki.client_cert.read_text(),
                "key": pki.client_key.read_text(),
            },
            "sealing": {"keys": "k1:" + base64.b64encode(os.urandom(32)).decode()},
            "htpasswd": {"entries": htpasswd},
        },
    }
    values_file = WORK / "generated-values.json"
    values_file.write_text(json.dumps(values))
    values_file.chmod(0o600)
    registration = {
        "registrations": [
            {
                "client_id": client_id,
                "client_secret": client_secret,
                "redirect_uris": [f"{public_base_url}/OAuthCallback"],
                # The chart's ingress routes {public_base_url}/espi/notify to the fetcher; the
                # pod has no ingress, so PG&E's BatchList goes where that route leads (the
                # fetcher's port on the pod's loopback). BATCH_SCOPE=bulk waits for it.
                "notification_uri": f"http://127.0.0.1:{FETCHER_PORT}/espi/notify",
                "client_cert": "client.pem",
            }
        ]
    }
    sandbox_files = {
        name: (pki.directory / name).read_bytes()
        for name in (devpki.CA_CERT, devpki.SERVER_CERT, devpki.SERVER_KEY, devpki.CLIENT_CERT)
    }
    # The sandbox checks the whole set is present and valid before using it as is.
    for name in (
        devpki.CA_KEY,
        devpki.CLIENT_KEY,
        devpki.OTHER_CLIENT_CERT,
        devpki.OTHER_CLIENT_KEY,
        devpki.ROGUE_CA_CERT,
        devpki.ROGUE_CA_KEY,
        devpki.ROGUE_CLIENT_CERT,
        devpki.ROGUE_CLIENT_KEY,
    ):
        sandbox_files[name] = (pki.directory / name).read_bytes()
    sandbox_files["registration.json"] = json.dumps(registration).encode()
    existing = {
        "scwadd-sandbox": sandbox_files,
        "scwadd-sandbox-ca": {"ca.crt": pki.ca_cert.read_bytes()},
    }
    driver_env = {
        "PUBLIC_BASE_URL": public_base_url,
        "OPERATOR_USER": OPERATOR,
        "OPERATOR_PASSWORD": password,
        "CUSTODIAN_CA_FILE": "/etc/scwadd/demo-ca/ca.crt",
    }
    return values_file, existing, driver_env


def render(values_file: Path) -> list[Obj]:
    """helm/scwadd rendered offline by Helm's engine, as tests/deploy renders it."""
    subprocess.run(["bash", REPO / "scripts" / "deploy" / "tools.sh"], check=True)  # noqa: S603,S607
    out = WORK / "rendered"
    subprocess.run(  # noqa: S603
        [
            str(CHECKERS),
            str(REPO / "tests" / "deploy" / "chart_tool.py"),
            str(REPO / "helm" / "scwadd"),
            str(out),
            str(REPO / "scripts" / "images" / "demo-values.yaml"),
            str(values_file),
        ],
        check=True,
    )
    return [entry["object"] for entry in json.loads((out / "objects.json").read_text())]


# -- the rendered objects, read as a kubelet reads them -----------------------------------------


class Cluster:
    def __init__(self, objects: list[Obj], existing: dict[str, dict[str, bytes]]) -> None:
        self.objects = objects
        self.secrets: dict[str, dict[str, bytes]] = dict(existing)
        self.config_maps: dict[str, dict[str, bytes]] = {}
        for obj in objects:
            name = obj["metadata"]["name"]
            if obj["kind"] == "Secret":
                data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
                data |= {k: v.encode() for k, v in (obj.get("stringData") or {}).items()}
                self.secrets[name] = data
            elif obj["kind"] == "ConfigMap":
                self.config_maps[name] = {k: v.encode() for k, v in (obj.get("data") or {}).items()}

    def of_kind(self, *kinds: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] in kinds]

    def workloads(self) -> list[Obj]:
        found = self.of_kind("Deployment", "StatefulSet")

        def rank(obj: Obj) -> int:
            component = obj["metadata"]["labels"]["app.kubernetes.io/component"]
            return ORDER.index(component)

        return sorted(found, key=rank)

    def hosts_file(self) -> str:
        names = ["localhost"]
        for service in self.of_kind("Service"):
            name = service["metadata"]["name"]
            names += [name, f"{name}.{NAMESPACE}", f"{name}.{NAMESPACE}.svc"]
            names.append(f"{name}.{NAMESPACE}.svc.cluster.local")
        for sts in self.of_kind("StatefulSet"):
            names.append(f"{sts['metadata']['name']}-0")
        return "".join(f"127.0.0.1\t{name}\n" for name in names)

    def service_port(self, name: str, port: int | str) -> int:
        """The loopback port behind Service ``name``'s ``port`` (number or name)."""
        (service,) = [s for s in self.of_kind("Service") if s["metadata"]["name"] == name]
        (entry,) = [p for p in service["spec"]["ports"] if port in (p["port"], p.get("name"))]
        target = entry.get("targetPort", entry["port"])
        if isinstance(target, int):
            return target
        selector = service["spec"]["selector"]
        for workload in self.workloads():
            labels = workload["spec"]["template"]["metadata"]["labels"]
            if all(labels.get(k) == v for k, v in selector.items()):
                return container_port(workload["spec"]["template"]["spec"], target)
        raise LookupError(f"service {name}: no workload serves port {port}")

    def ingress_routes(self) -> list[dict[str, Any]]:
        """host, path prefix and loopback backend of every rendered Ingress rule."""
        routes = []
        for ingress in self.of_kind("Ingress"):
            for rule in ingress["spec"]["rules"]:
                for path in rule["http"]["paths"]:
                    backend = path["backend"]["service"]
                    port = backend["port"].get("number", backend["port"].get("name"))
                    routes.append(
                        {
                            "host": rule["host"],
                            "path": path["path"],
                            "service": backend["name"],
                            "port": self.service_port(backend["name"], port),
                        }
                    )
        return sorted(routes, key=lambda r: -len(r["path"]))


def container_port(pod_spec: Obj, port: int | str) -> int:
    if isinstance(port, int):
        return port
    for container in pod_spec["containers"]:
        for entry in container.get("ports", []):
            if entry.get("name") == port:
                return int(entry["containerPort"])
    raise LookupError(f"no container port named {port}")


def resolve_env(cluster: Cluster, container: Obj, pod_name: str) -> dict[str, str]:
    """The container's environment as the kubelet builds it, ``$(VAR)`` references expanded."""
    env: dict[str, str] = {}

    def expand(value: str) -> str:
        return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), value)

    for source in container.get("envFrom", []):
        if "secretRef" in source:
            data = cluster.secrets[source["secretRef"]["name"]]
        else:
            data = cluster.config_maps[source["configMapRef"]["name"]]
        env |= {k: v.decode() for k, v in data.items()}
    for entry in container.get("env", []):
        name = entry["name"]
        if "value" in entry:
            env[name] = expand(str(entry["value"]))
            continue
        ref = entry["valueFrom"]
        if "secretKeyRef" in ref:
            key_ref = ref["secretKeyRef"]
            env[name] = cluster.secrets[key_ref["name"]][key_ref["key"]].decode()
        elif "configMapKeyRef" in ref:
            key_ref = ref["configMapKeyRef"]
            env[name] = cluster.config_maps[key_ref["name"]][key_ref["key"]].decode()
        elif "fieldRef" in ref:
            field = ref["fieldRef"]["fieldPath"]
            fields = {"metadata.name": pod_name, "metadata.namespace": NAMESPACE}
            fields |= {"status.podIP": "127.0.0.1", "spec.nodeName": "podman"}
            env[name] = fields[field]
        else:
            raise ValueError(f"{name}: unsupported valueFrom {sorted(ref)}")
    return env


# -- podman ---------------------------------------------------------------------------------------


class Pod:
    def __init__(self, cluster: Cluster, images: dict[str, str]) -> None:
        self.cluster = cluster
        self.images = images  # component -> image for the public images not pulled here
        self.hosts = WORK / "hosts"
        self.hosts.write_text(cluster.hosts_file())
        self.hosts.chmod(0o644)
        self.started: list[str] = []
        self.volume_sources_cache: dict[str, dict[str, list[str]]] = {}
        self.metrics_ports: dict[str, int] = {}

    def metrics_port(self, workload: str, rendered: str) -> str:
        """Each Kubernetes pod has its own network namespace, so every service's pod serves
        /metrics on the same METRICS_PORT; here all of them share one loopback, so each
        workload after the first gets the next free number (nothing in the demo scrapes it)."""
        if workload not in self.metrics_ports:
            self.metrics_ports[workload] = int(rendered) + len(self.metrics_ports)
        return str(self.metrics_ports[workload])

    def create(self) -> None:
        podman("pod", "rm", "--force", "--ignore", POD)
        podman("pod", "create", "--name", POD, "--network", "none", "--hostname", POD)
        podman("pod", "start", POD)

    def remove(self) -> None:
        for name in self.started:
            logs = podman("logs", name, check=False)
            (WORK / "logs" / f"{name}.log").write_text(logs.stdout + logs.stderr)
        podman("pod", "rm", "--force", "--ignore", POD, check=False)

    def volume_sources(self, workload: Obj) -> dict[str, list[str]]:
        """podman --mount options per volume name (without the destination)."""
        name = workload["metadata"]["name"]
        spec = workload["spec"]["template"]["spec"]
        fs_group = spec.get("securityContext", {}).get("fsGroup", 0)
        root = WORK / "volumes" / name
        sources: dict[str, list[str]] = {}
        for volume in spec.get("volumes", []):
            vname = volume["name"]
            if "emptyDir" in volume:
                size = volume["emptyDir"].get("sizeLimit", "64Mi")
                sources[vname] = ["type=tmpfs", f"tmpfs-size={quantity(size)}", "tmpfs-mode=1777"]
                continue
            if "secret" in volume:
                data = self.cluster.secrets[volume["secret"]["secretName"]]
                mode = volume["secret"].get("defaultMode", 0o644)
                items = volume["secret"].get("items")
            elif "configMap" in volume:
                data = self.cluster.config_maps[volume["configMap"]["name"]]
                mode = volume["configMap"].get("defaultMode", 0o644)
                items = volume["configMap"].get("items")
            else:
                raise ValueError(f"{name}: unsupported volume {sorted(volume)}")
            directory = root / vname
            directory.mkdir(parents=True)
            directory.chmod(0o755)
            for item in items or [{"key": k, "path": k} for k in data]:
                target = directory / item["path"]
                target.write_bytes(data[item["key"]])
                os.chown(target, 0, fs_group)  # the kubelet gives projected files the fsGroup
                target.chmod(item.get("mode", mode))
            sources[vname] = ["type=bind", f"source={directory}", "readonly=true"]
        for claim in workload["spec"].get("volumeClaimTemplates", []):
            directory = root / claim["metadata"]["name"]
            directory.mkdir(parents=True)
            os.chown(directory, 0, fs_group)
            directory.chmod(0o2775)  # what fsGroup does to a volume: group-owned, setgid
            sources[claim["metadata"]["name"]] = ["type=bind", f"source={directory}"]
        return sources

    def run_args(self, workload: Obj, container: Obj, name: str, pod_name: str) -> list[str]:
        spec = workload["spec"]["template"]["spec"]
        pod_sc = spec.get("securityContext", {})
        sc = container.get("securityContext", {})
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        gid = sc.get("runAsGroup", pod_sc.get("runAsGroup", uid))
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) and not uid:
            raise ValueError(f"{name}: runAsNonRoot without a non-root runAsUser")
        if sc.get("privileged"):
            raise ValueError(f"{name}: privileged containers are not run")
        args = ["--pod", POD, "--name", name, "--pull", "never"]
        args += ["--user", f"{uid}:{gid}"]
        if "fsGroup" in pod_sc:
            args += ["--group-add", str(pod_sc["fsGroup"])]
        if sc.get("readOnlyRootFilesystem"):
            # Only the rendered volumes are writable: no tmpfs of podman's own on /tmp or /run.
            args += ["--read-only", "--read-only-tmpfs=false"]
        capabilities = sc.get("capabilities", {})
        args += [f"--cap-drop={cap}" for cap in capabilities.get("drop", [])]
        args += [f"--cap-add={cap}" for cap in capabilities.get("add", [])]
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        # seccompProfile RuntimeDefault is podman's default profile.
        env_file = WORK / "env" / f"{name}.env"
        env = resolve_env(self.cluster, container, pod_name)
        if "METRICS_PORT" in env:
            workload_name = workload["metadata"]["name"]
            env["METRICS_PORT"] = self.metrics_port(workload_name, env["METRICS_PORT"])
        if any("\n" in value for value in env.values()):
            raise ValueError(f"{name}: a multi-line environment value cannot go in an env file")
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        env_file.chmod(0o600)
        args += ["--env-file", str(env_file)]
        args += ["--mount", f"type=bind,source={self.hosts},destination=/etc/hosts,readonly=true"]
        sources = self.volume_sources_cache[workload["metadata"]["name"]]
        for mount in container.get("volumeMounts", []):
            options = list(sources[mount["name"]])
            options.append(f"destination={mount['mountPath']}")
            if mount.get("readOnly") and "readonly=true" not in options:
                options.append("readonly=true")
            args += ["--mount", ",".join(options)]
        if container.get("command"):
            args += ["--entrypoint", json.dumps(container["command"])]
        component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        args.append(self.images.get(component, container["image"]))
        args += [str(a) for a in container.get("args", [])]
        return args

    def start(self, workload: Obj) -> None:
        name = workload["metadata"]["name"]
        pod_name = f"{name}-0" if workload["kind"] == "StatefulSet" else name
        spec = workload["spec"]["template"]["spec"]
        self.volume_sources_cache[name] = self.volume_sources(workload)
        for init in spec.get("initContainers", []):
            self.run_to_completion(workload, init, f"{name}-{init['name']}", pod_name)
        for container in spec["containers"]:
            cname = f"{name}-{container['name']}"
            print(f"pod: starting {cname}", flush=True)
            podman("run", "--detach", *self.run_args(workload, container, cname, pod_name))
            self.started.append(cname)
        for container in spec["containers"]:
            self.wait_ready(f"{name}-{container['name']}", container, spec)

    def run_to_completion(self, workload: Obj, init: Obj, name: str, pod_name: str) -> None:
        """An init container, rerun on failure as the kubelet does, until it exits 0."""
        print(f"pod: running {name}", flush=True)
        deadline = time.monotonic() + DEADLINE
        while True:
            run_args = self.run_args(workload, init, name, pod_name)
            result = podman("run", "--rm", *run_args, check=False)
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} kept failing:\n{result.stdout}{result.stderr}")
            time.sleep(3.0)

    def wait_ready(self, name: str, container: Obj, spec: Obj) -> None:
        probe = container.get("readinessProbe") or container.get("startupProbe")
        if probe is None:
            return
        deadline = time.monotonic() + DEADLINE
        while not self.probe(name, probe, spec):
            state = podman("inspect", "--format", "{{.State.Status}}", name, check=False)
            if state.stdout.strip() != "running" or time.monotonic() > deadline:
                logs = podman("logs", name, check=False)
                raise RuntimeError(
                    f"{name} is {state.stdout.strip() or 'gone'} and not ready:\n"
                    f"{logs.stdout[-4000:]}{logs.stderr[-4000:]}"
                )
            time.sleep(1.0)
        print(f"pod: {name} ready", flush=True)

    def probe(self, name: str, probe: Obj, spec: Obj) -> bool:
        if "exec" in probe:
            return podman("exec", name, *probe["exec"]["command"], check=False).returncode == 0
        # httpGet and tcpSocket, from inside the pod's network as the kubelet reaches a pod.
        if "httpGet" in probe:
            get = probe["httpGet"]
            port = container_port(spec, get["port"])
            url = f"{get.get('scheme', 'HTTP').lower()}://127.0.0.1:{port}{get.get('path', '/')}"
            check = (
                "import ssl, sys, urllib.request as u; "
                f"u.urlopen({url!r}, timeout=3, context=ssl._create_unverified_context())"
            )
        else:
            port = container_port(spec, probe["tcpSocket"]["port"])
            check = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)"
        return self.in_pod_network([sys.executable, "-c", check]).returncode == 0

    def in_pod_network(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        infra = podman("pod", "inspect", "--format", "{{.InfraContainerID}}", POD).stdout.strip()
        pid = podman("inspect", "--format", "{{.State.Pid}}", infra).stdout.strip()
        return subprocess.run(  # noqa: S603
            ["nsenter", f"--net=/proc/{pid}/ns/net", *argv],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )

    def drive(self, image: str, driver_env: dict[str, str], routes: list[dict[str, Any]]) -> int:
        """scripts/images/drive.py in a container of the pod, hardened as the services are."""
        out = WORK / "out"
        out.mkdir()
        os.chown(out, 10001, 10001)
        (WORK / "routes.json").write_text(json.dumps(routes))
        env_file = WORK / "env" / "driver.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in driver_env.items()))
        env_file.chmod(0o600)
        ca = WORK / "volumes" / "driver-ca"
        ca.mkdir(parents=True)
        shutil.copy(WORK / "pki" / devpki.CA_CERT, ca / "ca.crt")
        mounts = [
            f"type=bind,source={self.hosts},destination=/etc/hosts,readonly=true",
            f"type=bind,source={REPO / 'scripts' / 'images' / 'drive.py'},"
            "destination=/demo/drive.py,readonly=true",
            f"type=bind,source={WORK / 'routes.json'},destination=/demo/routes.json,readonly=true",
            f"type=bind,source={ca},destination=/etc/scwadd/demo-ca,readonly=true",
            f"type=bind,source={out},destination=/demo/out",
            "type=tmpfs,destination=/tmp,tmpfs-size=64m,tmpfs-mode=1777",
        ]
        args = ["run", "--rm", "--pod", POD, "--name", f"{POD}-driver", "--pull", "never"]
        args += ["--user", "10001:10001", "--read-only", "--read-only-tmpfs=false"]
        args += ["--cap-drop=ALL", "--security-opt", "no-new-privileges"]
        args += ["--env-file", str(env_file)]
        for mount in mounts:
            args += ["--mount", mount]
        args += ["--entrypoint", "/opt/scwadd/bin/python", image, "/demo/drive.py"]
        return podman(*args, check=False, capture=False).returncode


def quantity(value: str) -> str:
    """A Kubernetes quantity (256Mi) as podman's tmpfs size (256m)."""
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", str(value))
    if not match:
        raise ValueError(f"unsupported quantity {value}")
    return match[1] + {"Ki": "k", "Mi": "m", "Gi": "g", None: ""}[match[2]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", required=True, help="the service images' tag (IMAGE_TAG)")
    parser.add_argument("--prefix", default="", help="IMAGE_PREFIX the images were built with")
    parser.add_argument("--nats-image", required=True, help="stands in for nats.image")
    parser.add_argument("--postgresql-image", required=True, help="stands in for postgresql.image")
    parser.add_argument("--keep", action="store_true", help="leave the pod running afterwards")
    args = parser.parse_args()
    if args.prefix not in ("", "localhost/"):
        # The chart names images <registry>/scwadd-<service>; podman keeps unprefixed builds as
        # localhost/scwadd-<service>.
        parser.error("the demo runs images built without IMAGE_PREFIX")
    shutil.rmtree(WORK, ignore_errors=True)
    for sub in ("env", "logs", "volumes"):
        (WORK / sub).mkdir(parents=True)
    (WORK / "env").chmod(0o700)
    values_file, existing, driver_env = generate_inputs(args.tag)
    cluster = Cluster(render(values_file), existing)
    pod = Pod(cluster, {"nats": args.nats_image, "postgresql": args.postgresql_image})
    started = time.monotonic()
    pod.create()
    try:
        for workload in cluster.workloads():
            pod.start(workload)
        print(f"pod: every workload ready after {time.monotonic() - started:.0f} s", flush=True)
        driver_image = f"localhost/scwadd-fetcher:{args.tag}"
        status = pod.drive(driver_image, driver_env, cluster.ingress_routes())
    finally:
        if not args.keep:
            pod.remove()
    print(f"pod: logs in {WORK / 'logs'}; the downloaded CSV in {WORK / 'out'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
