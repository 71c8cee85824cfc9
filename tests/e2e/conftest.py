"""End-to-end tier: the chart installed from the image onto a real node.

Nothing here gives a tokenwarden process an admin kubeconfig: the operator and the
authenticator run as the chart's pods under the chart's RBAC; the tests drive the
cluster as its administrator would, with kubectl and helm.

The node is ``tokenwarden dev-cluster --node`` (or kind, with ``--cluster=kind``).
Where a node cannot run (no root, no cgroups), every test here is skipped with the
reason, never silently.
"""
from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tokenwarden import devcluster

from ..support_tiers import summarise

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "tokenwarden"
EXAMPLES = REPO / "examples"
RELEASE = "tokenwarden"
NAMESPACE = "tokenwarden"
IMAGE = ("tokenwarden", "dev")
# Figures the tests measure (never assert on), printed at the end of the run and, when
# this variable names a file, written there as JSON.
FIGURES_ENV = "TOKENWARDEN_E2E_FIGURES"
_FIGURES: dict[str, float | int] = {}


@dataclass
class Node:
    """A cluster with a node, driven from the host with kubectl and helm."""

    kubeconfig: Path
    kubectl_bin: str
    helm_bin: str
    workdir: Path
    figures: dict[str, float | int] = field(default_factory=lambda: _FIGURES)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run([self.kubectl_bin, f"--kubeconfig={self.kubeconfig}", *args],
                                input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def json(self, *args: str) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def found(self, *args: str) -> dict | None:
        """``kubectl get`` of one object as JSON; None while it does not exist (yet)."""
        result = self.kubectl("get", *args, "-o", "json", check=False)
        if result.returncode != 0 and "NotFound" in result.stderr:
            return None
        if result.returncode != 0:
            raise AssertionError(f"kubectl get {' '.join(args)} failed:\n{result.stderr}")
        return json.loads(result.stdout)

    def helm(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        result = subprocess.run([self.helm_bin, f"--kubeconfig={self.kubeconfig}", *args],
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def wait_until(self, what: str, probe, timeout: float = 180, interval: float = 1.0):
        """Poll ``probe()`` until it returns something truthy; fail naming ``what``."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = probe()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {last!r})")

    def pods(self, namespace: str, selector: str) -> list[dict]:
        return self.json("get", "pods", "-n", namespace, "-l", selector)["items"]

    def logs(self, namespace: str, pod: str, container: str | None = None) -> str:
        args = ["logs", "-n", namespace, pod]
        if container:
            args += ["-c", container]
        return self.kubectl(*args, check=False).stdout

    def record(self, name: str, seconds: float) -> None:
        self.figures[name] = round(seconds, 1)

    def count(self, name: str, number: int) -> None:
        """A figure that is a number of things, not seconds."""
        self.figures[name] = int(number)


def _local_node(workdir: Path):
    log = lambda *_: None  # noqa: E731
    devcluster.ensure_node_packages(log)
    problems = devcluster.node_problems()
    if problems:
        pytest.skip("node tier skipped: " + "; ".join(problems))
    started = time.monotonic()
    devcluster.build_image(f"{IMAGE[0]}:{IMAGE[1]}", log=log)
    built = time.monotonic()
    cluster = devcluster.start_node_cluster(images=(f"{IMAGE[0]}:{IMAGE[1]}",), log=log)
    node = Node(cluster.kubeconfig, str(cluster.node.kubectl), str(devcluster.ensure_helm(log)), workdir)
    node.record("image build (cached base)", built - started)
    node.record("node cluster start", time.monotonic() - built)
    return node, cluster


def _kind_node(workdir: Path):
    from pytest_kind import KindCluster  # only where Docker and kind exist

    subprocess.run(["docker", "build", "-t", f"{IMAGE[0]}:{IMAGE[1]}", str(REPO)], check=True)
    kind = KindCluster("tokenwarden-e2e")
    kind.create()
    kind.load_docker_image(f"{IMAGE[0]}:{IMAGE[1]}")
    kubectl = shutil.which("kubectl") or str(kind.kubectl_path)
    return Node(Path(kind.kubeconfig_path), kubectl, str(devcluster.ensure_helm()), workdir), kind


@pytest.fixture(scope="package")
def node(request, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("e2e")
    if request.config.getoption("--cluster") == "kind":
        node, kind = _kind_node(workdir)
        stop = kind.delete
    else:
        node, cluster = _local_node(workdir)
        stop = cluster.stop
    try:
        yield node
    finally:
        figures = os.environ.get(FIGURES_ENV)
        if figures:
            Path(figures).write_text(json.dumps(node.figures, indent=2))
        stop()


@pytest.fixture(autouse=True)
def _figures_reach_the_summary(request):
    before = dict(_FIGURES)
    yield
    lines = [f"{name}: {value}" if isinstance(value, int) else f"{name}: {value} s"
             for name, value in _FIGURES.items() if before.get(name) != value]
    if lines:
        summarise(request, "end-to-end figures (measured, not asserted)", lines)


@dataclass
class Release:
    values: Path
    bootstrap_token: str
    installed_at: float


def release_values(bootstrap_token: str) -> dict:
    return {
        "image": {"repository": IMAGE[0], "tag": IMAGE[1], "pullPolicy": "Never"},
        "rotationOverlap": "20s",
        "quotas": {"maxAccountsPerNamespace": 3, "maxTokensPerAccount": 3},
        "authentication": {"servicetoken": {"bootstrap": {
            "token": bootstrap_token, "roles": ["power-user"], "ttl": "24h"}}},
    }


@pytest.fixture(scope="package")
def release(node) -> Release:
    """The chart installed as a user would: helm install with an authentication.yaml."""
    token = secrets.token_hex(32)
    values = node.workdir / "values.yaml"
    values.write_text(yaml.safe_dump(release_values(token)))
    started = time.monotonic()
    node.helm("install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace",
              "--values", str(values), "--wait", "--timeout", "5m")
    node.record("helm install --wait", time.monotonic() - started)
    return Release(values, token, started)


@pytest.fixture
def fresh_namespace(request, node, release):
    """A namespace of this test's own on the node, with the authenticator's CA, deleted afterwards."""
    name = f"{request.node.name.split('_')[1]}-{uuid.uuid4().hex[:6]}"
    node.kubectl("create", "namespace", name)
    copy_authenticator_ca(node, name)
    yield name
    node.kubectl("delete", "namespace", name, "--wait=false")


AUTHENTICATOR = f"{RELEASE}-authenticator.{NAMESPACE}.svc"
CA_CONFIGMAP = f"{RELEASE}-authenticator-ca"
# Where the agents mount the copy of the CA ConfigMap (as examples/agent-daemonset.yaml does).
CA_FILE = "/etc/tokenwarden/ca/ca.crt"


def copy_authenticator_ca(node: Node, namespace: str) -> None:
    """The CA ConfigMap copied into ``namespace``, with the commands examples/agent-daemonset.yaml gives."""
    ca = node.kubectl("get", "configmap", CA_CONFIGMAP, "-n", NAMESPACE, "-o", "jsonpath={.data.ca\\.crt}").stdout
    assert "BEGIN CERTIFICATE" in ca
    node.kubectl("create", "configmap", CA_CONFIGMAP, "-n", namespace, "--from-file=ca.crt=/dev/stdin", input=ca)


def verify_url(permission: str | None = None) -> str:
    url = f"https://{AUTHENTICATOR}/verify"
    return f"{url}?permission={permission}" if permission else url


def running_pods(node: Node, namespace: str, selector: str) -> list[dict]:
    """Pods running with every container ready, none being deleted."""
    return [p for p in node.pods(namespace, selector)
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
            and all(c.get("ready") for c in p["status"].get("containerStatuses", []))]


OPERATOR = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=operator"  # the operator's pods


def ready_operators(node: Node) -> list[str]:
    """The names of the release's operator pods that are up: every container ready, none being
    deleted (kopf's peering makes one of them the active one)."""
    return sorted(p["metadata"]["name"] for p in running_pods(node, NAMESPACE, OPERATOR)
                  if p["status"].get("containerStatuses"))


def probe_lines(log: str) -> list[dict[str, str]]:
    """The reference agent's log lines (``key=value`` pairs, quoted where needed) as dicts."""
    return [dict(field.split("=", 1) for field in shlex.split(line) if "=" in field)
            for line in log.splitlines() if line.strip()]


WORKLOAD_EXAMPLE = EXAMPLES / "agent-workload-identity.yaml"
WORKLOAD_AGENT = "profiling-agent"


def workload_example(namespace: str | None = None, expiration_seconds: int | None = None) -> str:
    """examples/agent-workload-identity.yaml as written, or moved into ``namespace`` (without
    its Namespace object) with a projected token of ``expiration_seconds``."""
    if namespace is None:
        return WORKLOAD_EXAMPLE.read_text()
    documents = [d for d in yaml.safe_load_all(WORKLOAD_EXAMPLE.read_text()) if d and d["kind"] != "Namespace"]
    for document in documents:
        document["metadata"]["namespace"] = namespace
        if document["kind"] == "DaemonSet" and expiration_seconds:
            for volume in document["spec"]["template"]["spec"]["volumes"]:
                for source in volume.get("projected", {}).get("sources", []):
                    source["serviceAccountToken"]["expirationSeconds"] = expiration_seconds
    return yaml.safe_dump_all(documents)


@dataclass
class RenewingAgent:
    namespace: str
    applied_at: float  # time.monotonic()


# Kubernetes refuses a projected token shorter than this; the kubelet renews it after 80 %.
SHORTEST_PROJECTED_TOKEN = 600


@pytest.fixture(scope="package")
def renewing_agent(node, release) -> RenewingAgent:
    """The workload-identity example in a namespace of its own, with the shortest projected
    token Kubernetes allows: the kubelet renews the file about 8 minutes after the pod starts.
    Started early in the tier and checked near its end (before the chart is uninstalled), so the
    wait overlaps the tests in between."""
    namespace = f"renewal-{uuid.uuid4().hex[:6]}"
    node.kubectl("create", "namespace", namespace)
    copy_authenticator_ca(node, namespace)
    node.kubectl("apply", "-f", "-", input=workload_example(namespace, SHORTEST_PROJECTED_TOKEN))
    yield RenewingAgent(namespace, time.monotonic())
    node.kubectl("delete", "namespace", namespace, "--wait=false")
