"""Fixtures for tests against a real API server (tests/integration, tests/bad_input), with the
operator and authenticator running as in production. tests/unit and tests/fuzz need none of them."""
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

from . import support_tiers
from .support_leaks import assert_no_token_leaked, cluster_haystacks

REPO = Path(__file__).resolve().parents[1]
CRDS = REPO / "crds"


def pytest_configure(config):
    config.pluginmanager.register(support_tiers, "tokenwarden-tiers")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/unit" not in str(item.fspath) and "tests/fuzz" not in str(item.fspath):  # neither needs a cluster
            item.add_marker(pytest.mark.integration)


@dataclass
class Cluster:
    kubeconfig: Path
    version: str
    plane: devcluster.ControlPlane | None = None
    # Where the API server expects the authenticator's TokenReview webhook (local plane only).
    authn_port: int | None = None
    authn_tls: Path | None = None


def _token_webhook(directory: Path) -> tuple[int, list[str]]:
    """A TLS identity for the authenticator and the API-server flags that call it."""
    from tokenwarden.tls import create_ca, issue_serving_cert

    ca = create_ca(directory, "tokenwarden-authenticator-ca")
    issue_serving_cert(ca, directory, "tls", ["127.0.0.1", "localhost"])
    port = devcluster.free_port()
    config = directory / "webhook.kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: tokenwarden, cluster: {{server: 'https://127.0.0.1:{port}/apis/authentication.k8s.io/v1/tokenreviews', certificate-authority: '{ca.cert}'}}}}]\n"
        "users: [{name: apiserver, user: {}}]\n"
        "contexts: [{name: webhook, context: {cluster: tokenwarden, user: apiserver}}]\n"
        "current-context: webhook\n")
    return port, [f"--authentication-token-webhook-config-file={config}",
                  "--authentication-token-webhook-version=v1",
                  "--authentication-token-webhook-cache-ttl=1s"]


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
    authn_tls = tmp_path_factory.mktemp("authn-tls")
    authn_port, webhook_args = _token_webhook(authn_tls)
    plane = devcluster.ControlPlane(binaries, log=lambda *_: None, extra_apiserver_args=webhook_args)
    plane.start()
    try:
        kube.install_crds(kube.load_api_client(str(plane.kubeconfig)), CRDS)
        yield Cluster(plane.kubeconfig, plane.version, plane, authn_port, authn_tls)
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


# The operator's own namespace, as the chart's release namespace: its import key lives there.
OPERATOR_NAMESPACE = "tokenwarden-system"
TEST_SETTINGS = f"""
quotas:
  maxAccountsPerNamespace: 3
  maxTokensPerAccount: 3
expiredRetention: 4s
bootstrap:
  namespace: tokenwarden-bootstrap
importKey:
  namespace: {OPERATOR_NAMESPACE}
"""


def _ensure_namespace(kubeconfig: Path, name: str) -> None:
    from kubernetes.client.rest import ApiException

    try:
        client.CoreV1Api(kube.load_api_client(str(kubeconfig))).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    except ApiException as exc:
        if exc.status != 409:
            raise


class OperatorProcess:
    """``tokenwarden operator`` as a separate process, as it runs in production."""

    def __init__(self, kubeconfig: Path, workdir: Path, extra_args: list[str] | None = None,
                 webhook: bool = True, namespaces: list[str] | None = None,
                 home_namespace: str | None = OPERATOR_NAMESPACE) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.extra_args = list(extra_args or [])
        self.webhook = webhook
        self.namespaces = list(namespaces or [])  # served; none: all
        self.home_namespace = home_namespace  # made at start (settings importKey.namespace); None: it exists
        self.config = workdir / "settings.yaml"
        self.config.write_text(TEST_SETTINGS)
        self.log_path = workdir / "operator.log"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        if self.home_namespace:
            _ensure_namespace(self.kubeconfig, self.home_namespace)
        liveness = devcluster.free_port()
        self.webhook_port = devcluster.free_port()
        self.metrics_port = devcluster.free_port()
        log = open(self.log_path, "ab")
        scope = [f"--namespace={n}" for n in self.namespaces] or ["--all-namespaces"]
        argv = [sys.executable, "-m", "tokenwarden", "operator", *scope, "--debug",
                "--config", str(self.config), "--kubeconfig", str(self.kubeconfig),
                "--metrics-port", str(self.metrics_port), "--liveness", f"http://127.0.0.1:{liveness}/healthz",
                *self.extra_args]
        if self.webhook:
            argv += ["--webhook-port", str(self.webhook_port)]
        self.process = subprocess.Popen(
            argv,
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

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()


def _metrics_while_alive(name: str, read) -> dict[str, str]:
    try:
        return {f"{name} metrics": read()}
    except OSError:  # stopped by its test and not started again
        return {}


@pytest.fixture(scope="session")
def operator(cluster, core, custom, tmp_path_factory):
    """The session's operator; when it stops, its log and metrics, the events and the custom
    objects are searched for tokens."""
    process = OperatorProcess(cluster.kubeconfig, tmp_path_factory.mktemp("operator"))
    process.start()
    yield process
    metrics = _metrics_while_alive("operator", process.metrics)
    process.stop()
    assert_no_token_leaked({"operator log": process.log(), **metrics, **cluster_haystacks(core, custom)}, core)


class AuthenticatorProcess:
    """``tokenwarden authenticator`` over TLS, on the port the API server's token webhook calls;
    health and metrics on a plain-HTTP port of their own."""

    def __init__(self, cluster: Cluster, workdir: Path, *, port: int | None = None, tls: Path | None = None,
                 extra: tuple[str, ...] = (), kubeconfig: Path | None = None, settings: str = TEST_SETTINGS) -> None:
        self.port = port or cluster.authn_port or devcluster.free_port()
        self.tls = tls or cluster.authn_tls
        self.metrics_port = devcluster.free_port()
        self.log_path = workdir / "authenticator.log"
        self.url = f"https://127.0.0.1:{self.port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}"
        self.ca = str(self.tls / "ca.crt") if self.tls else None
        config = workdir / "settings.yaml"
        config.write_text(settings)
        argv = [sys.executable, "-m", "tokenwarden", "authenticator", "--debug", "--config", str(config),
                "--kubeconfig", str(kubeconfig or cluster.kubeconfig), "--host", "127.0.0.1", "--port", str(self.port),
                "--metrics-port", str(self.metrics_port), "--last-used-interval", "1", "--scheme", "Otel", *extra]
        if self.tls:
            argv += ["--tls-cert", str(self.tls / "tls.crt"), "--tls-key", str(self.tls / "tls.key")]
        else:
            self.url = f"http://127.0.0.1:{self.port}"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._wait_ready()

    def get(self, path: str, headers: dict | None = None, timeout: float = 5):
        import requests

        return requests.get(self.url + path, headers=headers or {}, verify=self.ca or True, timeout=timeout)

    def internal(self, path: str, timeout: float = 5):
        """GET ``path`` (/healthz, /readyz, /metrics) on the health and metrics port."""
        import requests

        return requests.get(self.metrics_url + path, timeout=timeout)

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"authenticator exited:\n{self.log()[-3000:]}")
            try:
                if self.internal("/readyz", timeout=1).status_code == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"authenticator not ready after {timeout}s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def authenticator(cluster, operator, core, tmp_path_factory):
    """The session's authenticator; when it stops, its log and metrics are searched for tokens."""
    process = AuthenticatorProcess(cluster, tmp_path_factory.mktemp("authenticator"))
    yield process
    metrics = _metrics_while_alive("authenticator", lambda: process.internal("/metrics").text)
    process.stop()
    assert_no_token_leaked({"authenticator log": process.log(), **metrics}, core)


def pytest_addoption(parser):
    parser.addoption(
        "--cluster",
        choices=["local", "kind"],
        default="local",
        help="local: etcd + kube-apiserver built from Go modules (default); kind: pytest-kind (needs Docker)",
    )
    parser.addoption("--fault-ops", type=int, default=None,
                     help="tests/integration/test_faults.py: how many random operations per seed (default 30 "
                          "for the fixed seeds, 200 when exploring; long runs also need --timeout)")
    parser.addoption("--fault-seed", default=None,
                     help="tests/integration/test_faults.py: the seed to replay, or 'random' to explore new "
                          "ones (default: the fixed seeds)")
    parser.addoption("--fault-explore", default=None, metavar="DURATION",
                     help="with --fault-seed random: new seeds until DURATION (e.g. 60m) is up, a replay "
                          "line for each that breaks an invariant")
