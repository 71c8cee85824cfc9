"""A real etcd + kube-apiserver (+ kube-controller-manager) on loopback ports."""
from __future__ import annotations

import atexit
import base64
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from tokenwarden.devcluster._build import Binaries
from tokenwarden.devcluster._errors import ControlPlaneError
from tokenwarden.devcluster._pki import Pki, create_pki
from tokenwarden.tls import KeyPair

CLUSTER_NAME = "tokenwarden-dev"
_START_TIMEOUT = 90.0


LISTENING_PORTS = (10000, 32767)  # below Linux's default range for outgoing connections
_handed: set[int] = set()


def _outgoing_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A loopback port nothing holds, for a server started next, never handed out before by this
    process. Drawn outside the kernel's range for outgoing connections: a port from that range
    (what binding port 0 gives) may become a client connection's own port in the second before
    the server told of it binds, which then fails with "address already in use"."""
    low, high = LISTENING_PORTS
    outgoing = _outgoing_range()
    candidates = [p for p in range(low, high + 1) if not outgoing[0] <= p <= outgoing[1] and p not in _handed]
    for port in random.sample(candidates, min(len(candidates), 200)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))  # no SO_REUSEADDR: a port in TIME_WAIT is passed over
            except OSError:
                continue
        _handed.add(port)
        return port
    with socket.socket() as sock:  # all taken (or the kernel's range covers them): the kernel's choice
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


class _Process:
    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is None:
            return
        log = _tail(self.log_path)
        if "address already in use" in log:
            raise ControlPlaneError(
                f"{self.name} could not listen: a port is already taken by another process "
                f"(stop it or start again to pick other free ports); see {self.log_path}"
            )
        raise ControlPlaneError(f"{self.name} exited with code {code} during start:\n{log}")

    def stop(self, grace: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()


def _client_url(etcd: _Process) -> str:
    return next(a.split("=", 1)[1] for a in etcd.argv if a.startswith("--listen-client-urls="))


def write_kubeconfig(path: Path, server: str, ca: KeyPair, user: KeyPair, user_name: str) -> Path:
    """A kubeconfig (mode 0600) for ``user``'s client certificate at ``server``."""

    def b64(file: Path) -> str:
        return base64.b64encode(file.read_bytes()).decode()

    path.write_text(yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER_NAME, "cluster": {
            "server": server, "certificate-authority-data": b64(ca.cert)}}],
        "users": [{"name": user_name, "user": {
            "client-certificate-data": b64(user.cert), "client-key-data": b64(user.key)}}],
        "contexts": [{"name": CLUSTER_NAME, "context": {"cluster": CLUSTER_NAME, "user": user_name}}],
        "current-context": CLUSTER_NAME,
    }, sort_keys=False))
    path.chmod(0o600)
    return path


def component_kubeconfig_flags(kubeconfig) -> list[str]:
    """The flags with which kube-controller-manager and kube-scheduler reach the API server
    (and check who calls them) as one identity."""
    return [f"--{flag}={kubeconfig}" for flag in ("kubeconfig", "authentication-kubeconfig",
                                                   "authorization-kubeconfig")] + ["--leader-elect=false"]


# Metadata (who, what, which URI, when; no bodies) for every request. RequestReceived is left
# out, so a request is written once it is answered (ResponseComplete); a watch, which is
# answered only when it ends, is also written once when its stream starts (ResponseStarted).
# Both stages carry the same auditID: count distinct auditIDs to count requests.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}


def audit_flags(log: Path, policy: Path) -> list[str]:
    """kube-apiserver's flags to write :data:`AUDIT_POLICY`'s audit lines to ``log`` as JSON,
    each before its request is answered (blocking mode, the default), in one file that is never
    rotated (a dev cluster lives minutes); the policy is written to ``policy``."""
    policy.write_text(yaml.safe_dump(AUDIT_POLICY, sort_keys=False))
    return [f"--audit-policy-file={policy}", f"--audit-log-path={log}", "--audit-log-format=json",
            "--audit-log-mode=blocking", "--audit-log-maxsize=0"]


class ControlPlane:
    """Start with :meth:`start` (or ``with``); :attr:`kubeconfig` then points at it.

    ``extra_apiserver_args`` are appended to kube-apiserver's flags (for example a
    token-webhook configuration). ``audit_log``, when given, is where kube-apiserver writes
    an audit line (JSON) for every request: see :func:`audit_flags`.
    """

    _authorization_mode = "RBAC"
    _apiserver_hosts: tuple[str, ...] = ()

    def __init__(
        self,
        binaries: Binaries,
        *,
        kubeconfig: str | os.PathLike[str] | None = None,
        controller_manager: bool = True,
        extra_apiserver_args: list[str] | None = None,
        audit_log: str | os.PathLike[str] | None = None,
        log=print,
    ) -> None:
        self.binaries = binaries
        self.version = binaries.kubernetes_version
        self.workdir = Path(tempfile.mkdtemp(prefix="tokenwarden-cluster-"))
        self.kubeconfig = Path(kubeconfig) if kubeconfig else self.workdir / "kubeconfig"
        self._own_kubeconfig = kubeconfig is None
        self.controller_manager = controller_manager
        self.extra_apiserver_args = list(extra_apiserver_args or [])
        self.audit_log = Path(audit_log) if audit_log else None
        self._log = log
        self._processes: list[_Process] = []
        self.pki: Pki | None = None
        self.server = ""

    # -- lifecycle -------------------------------------------------------
    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._check_kubeconfig_path()
        atexit.register(self.stop)
        try:
            self.pki = create_pki(self.workdir / "pki", self._apiserver_hosts)
            etcd_url = self._start_etcd()
            self._start_apiserver(etcd_url)
            self._write_kubeconfig()
            if self.controller_manager:
                self._start_controller_manager()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """End every process this harness started (by pid) and remove its files."""
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()
        if not self._own_kubeconfig and self.kubeconfig.is_file() and self.server:
            self.kubeconfig.unlink(missing_ok=True)
        shutil.rmtree(self.workdir, ignore_errors=True)
        atexit.unregister(self.stop)

    def _apiserver_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.server}/readyz", timeout=3, context=self._ssl_context()) as r:
                return r.status == 200
        except (OSError, urllib.error.HTTPError):
            return False

    def _etcd_healthy(self, url: str) -> bool:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                return json.load(response).get("health") == "true"
        except (OSError, ValueError):
            return False

    def outage(self, component: str, seconds: float) -> None:
        """Stop one component (``etcd`` or ``kube-apiserver``) for ``seconds``, then start it
        again with the same flags and wait until it serves: a fault for resilience tests."""
        index, process = next((i, p) for i, p in enumerate(self._processes) if p.name == component)
        process.stop()
        time.sleep(seconds)
        restarted = _Process(component, process.argv, process.log_path)
        self._processes[index] = restarted
        if component == "kube-apiserver":
            self._wait(restarted, self._apiserver_ready, component)
        else:
            url = _client_url(process)
            self._wait(restarted, lambda: self._etcd_healthy(url), component)

    def etcd(self, path: str, body: dict) -> dict:
        """One call to etcd's JSON gateway on its client port (no etcdctl needed), e.g.
        ``/v3/kv/range`` with base64 keys."""
        url = _client_url(next(p for p in self._processes if p.name == "etcd"))
        request = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def compact_etcd(self) -> int:
        """Compact etcd's history up to its current revision, as kube-apiserver's periodic
        compaction does: a watch resumed from an older resourceVersion then gets 410 Gone.
        Returns the revision."""
        revision = int(self.etcd("/v3/kv/range", {"key": base64.b64encode(b"\0").decode(), "limit": 1})
                       ["header"]["revision"])
        self.etcd("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    @property
    def pids(self) -> list[int]:
        return [p.popen.pid for p in self._processes]

    # -- pieces ----------------------------------------------------------
    def _check_kubeconfig_path(self) -> None:
        if self._own_kubeconfig:
            return
        if not self.kubeconfig.parent.is_dir():
            raise ControlPlaneError(
                f"cannot write kubeconfig {self.kubeconfig}: folder {self.kubeconfig.parent} "
                "does not exist (create it or pass another --kubeconfig)"
            )
        if self.kubeconfig.exists():
            try:
                existing = yaml.safe_load(self.kubeconfig.read_text()) or {}
            except (OSError, yaml.YAMLError):
                existing = {}
            names = {c.get("name") for c in existing.get("clusters") or [] if isinstance(c, dict)}
            if names != {CLUSTER_NAME}:
                raise ControlPlaneError(
                    f"{self.kubeconfig} exists and is not a tokenwarden dev-cluster kubeconfig: "
                    "pass another --kubeconfig or remove the file"
                )

    def _command(self, argv: list[str]) -> list[str]:
        """How a component is started; a node cluster runs them in its network namespace."""
        return argv

    def _spawn(self, name: str, argv: list[str]) -> _Process:
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        process = _Process(name, self._command(argv), logs / f"{name}.log")
        self._processes.append(process)
        return process

    def _wait(self, process: _Process, probe, what: str) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            process.check_alive()
            if probe():
                return
            time.sleep(0.2)
        raise ControlPlaneError(
            f"{what} did not become ready within {_START_TIMEOUT:.0f}s:\n{_tail(process.log_path)}"
        )

    def _etcd_ports(self) -> tuple[int, int]:
        return free_port(), free_port()

    def _start_etcd(self) -> str:
        client, peer = self._etcd_ports()
        url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        process = self._spawn("etcd", [
            str(self.binaries.etcd),
            "--name=default",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={url}",
            f"--advertise-client-urls={url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ])
        self._wait(process, lambda: self._etcd_healthy(url), "etcd")
        return url

    def _ssl_context(self) -> ssl.SSLContext:
        assert self.pki is not None
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        context.load_cert_chain(str(self.pki.admin.cert), str(self.pki.admin.key))
        return context

    def _apiserver_address(self) -> list[str]:
        """Where kube-apiserver listens (sets :attr:`server`) and how it is set up for that."""
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        return [
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            "--disable-admission-plugins=ServiceAccount",
            "--endpoint-reconciler-type=none",
        ]

    def _start_apiserver(self, etcd_url: str) -> None:
        assert self.pki is not None
        pki = self.pki
        process = self._spawn("kube-apiserver", [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers={etcd_url}",
            *self._apiserver_address(),
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.serving.cert}",
            f"--tls-private-key-file={pki.serving.key}",
            f"--client-ca-file={pki.ca.cert}",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.0.0.0/24",
            f"--authorization-mode={self._authorization_mode}",
            "--allow-privileged=true",
            *(audit_flags(self.audit_log, self.workdir / "audit-policy.yaml") if self.audit_log else []),
            *self.extra_apiserver_args,
        ])
        self._wait(process, self._apiserver_ready, "kube-apiserver")

    def _write_kubeconfig(self) -> None:
        assert self.pki is not None
        write_kubeconfig(self.kubeconfig, self.server, self.pki.ca, self.pki.admin, "admin")

    def _start_controller_manager(self) -> None:
        assert self.pki is not None
        port = free_port()
        kubeconfig = str(self.kubeconfig)
        process = self._spawn("kube-controller-manager", [
            str(self.binaries.kube_controller_manager),
            *component_kubeconfig_flags(kubeconfig),
            # clusterrole-aggregation: the chart's ClusterRoles join admin, edit and view, as in a cluster.
            "--controllers=garbagecollector,namespace,serviceaccount,serviceaccount-token,clusterrole-aggregation",
            f"--service-account-private-key-file={self.pki.service_account_key}",
            f"--root-ca-file={self.pki.ca.cert}",
            "--use-service-account-credentials=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'kcm-certs'}",
        ])

        def healthy() -> bool:
            try:
                insecure = ssl.create_default_context()
                insecure.check_hostname = False
                insecure.verify_mode = ssl.CERT_NONE
                with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=2,
                                            context=insecure) as r:
                    return r.status == 200
            except (OSError, urllib.error.HTTPError):
                return False

        self._wait(process, healthy, "kube-controller-manager")
