"""Fixtures for tests against a real API server, with the operator running as in production."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from tokenwarden import devcluster, kube

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@dataclass
class Cluster:
    kubeconfig: Path
    version: str
    plane: devcluster.ControlPlane | None = None


@pytest.fixture(scope="session")
def cluster(request, tmp_path_factory):
    if request.config.getoption("--cluster") == "kind":
        from pytest_kind import KindCluster  # only where Docker and kind exist

        kind = KindCluster("tokenwarden-tests")
        kind.create()
        try:
            version = kind.api.version[0] if hasattr(kind.api, "version") else "kind"
            kube.install_crds(kube.load_api_client(str(kind.kubeconfig_path)), CRDS)
            yield Cluster(Path(kind.kubeconfig_path), str(version))
        finally:
            kind.delete()
        return
    binaries = devcluster.ensure_binaries()
    plane = devcluster.ControlPlane(binaries, log=lambda *_: None)
    plane.start()
    try:
        kube.install_crds(kube.load_api_client(str(plane.kubeconfig)), CRDS)
        yield Cluster(plane.kubeconfig, plane.version, plane)
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def api_client(cluster) -> client.ApiClient:
    return kube.load_api_client(str(cluster.kubeconfig))


@pytest.fixture(scope="session")
def core(api_client) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def custom(api_client) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture
def namespace(request, core) -> str:
    """A namespace of this test's own, removed afterwards."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].rstrip("-")
    name = f"{base}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


TEST_SETTINGS = """
quotas:
  maxAccountsPerNamespace: 3
  maxTokensPerAccount: 3
expiredRetention: 4s
"""


class OperatorProcess:
    """``tokenwarden operator`` as a separate process, as it runs in production."""

    def __init__(self, kubeconfig: Path, workdir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.config = workdir / "settings.yaml"
        self.config.write_text(TEST_SETTINGS)
        self.log_path = workdir / "operator.log"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        liveness = devcluster.free_port()
        self.webhook_port = devcluster.free_port()
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tokenwarden", "operator", "--all-namespaces", "--debug",
             "--config", str(self.config), "--kubeconfig", str(self.kubeconfig),
             "--webhook-port", str(self.webhook_port),
             "--liveness", f"http://127.0.0.1:{liveness}/healthz"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        self._wait_live(liveness)

    def _wait_live(self, port: int, timeout: float = 60) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"operator exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"operator not live after {timeout}s:\n{self.log()[-3000:]}")

    def stop(self, kill: bool = False) -> None:
        if self.process and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def operator(cluster, tmp_path_factory):
    process = OperatorProcess(cluster.kubeconfig, tmp_path_factory.mktemp("operator"))
    process.start()
    yield process
    process.stop()
