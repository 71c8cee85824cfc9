"""Cluster DNS: the CoreDNS built from hack/coredns answers a Service's name with its ClusterIP,
read from the API server, and answers nothing outside the cluster without asking anyone else."""
from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest
import yaml
from kubernetes import client

from tokenwarden import devcluster


class CoreDNS:
    """The built CoreDNS as a plain process on 127.0.0.1, with a Corefile from ``corefile``."""

    def __init__(self, binary: Path, workdir: Path, kubeconfig: Path) -> None:
        self.port = devcluster.free_port()
        self.ready_port = devcluster.free_port()
        context = yaml.safe_load(kubeconfig.read_text())["current-context"]
        self.config = workdir / "Corefile"
        self.config.write_text(devcluster.corefile(
            kubeconfig, "127.0.0.1", self.port, health_port=devcluster.free_port(),
            ready_port=self.ready_port, context=context, log_queries=True))
        self.log_path = workdir / "coredns.log"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([str(binary), "-conf", str(self.config)], stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"coredns exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.ready_port}/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"coredns not ready after {timeout}s:\n{self.log()[-3000:]}")

    def ask(self, name: str, rdtype: str = "A", attempts: int = 3) -> dns.message.Message:
        """One query over UDP, sent again if no reply came, as a resolver does: a busy host may drop
        a datagram."""
        for attempt in range(attempts):
            try:
                return dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=self.port, timeout=3)
            except dns.exception.Timeout:
                if attempt == attempts - 1:
                    raise

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def coredns_binary() -> Path:
    return devcluster.ensure_coredns(log=lambda *_: None)


@pytest.fixture(scope="module")
def coredns(coredns_binary, cluster, tmp_path_factory):
    server = CoreDNS(coredns_binary, tmp_path_factory.mktemp("coredns"), cluster.kubeconfig)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def answer_within(coredns: CoreDNS, name: str, rdtype: str, timeout: float = 20) -> dns.message.Message:
    """The first NOERROR reply with an answer: a new object shows once CoreDNS's watch sees it,
    and a negative answer cached before then lives 5 seconds."""
    deadline = time.monotonic() + timeout
    while True:
        reply = coredns.ask(name, rdtype)
        if reply.rcode() == dns.rcode.NOERROR and reply.answer:
            return reply
        if time.monotonic() > deadline:
            raise AssertionError(f"no answer for {name} {rdtype} after {timeout}s: {reply}\n{coredns.log()[-2000:]}")
        time.sleep(0.5)


def test_a_service_name_resolves_to_its_cluster_ip(coredns, core, namespace):
    service = core.create_namespaced_service(namespace, client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(selector={"app": "web"}, ports=[client.V1ServicePort(port=80)])))
    cluster_ip = service.spec.cluster_ip
    assert cluster_ip

    name = f"web.{namespace}.svc.cluster.local."
    reply = answer_within(coredns, name, "A")
    assert [(r.name.to_text(), r.ttl, [item.address for item in r]) for r in reply.answer] == \
        [(name, 5, [cluster_ip])]
    assert reply.flags & dns.flags.AA

    # The reverse zone of the service range answers the ClusterIP's PTR with the name.
    reverse = answer_within(coredns, dns.reversename.from_address(cluster_ip).to_text(), "PTR")
    assert [item.target.to_text() for item in reverse.answer[0]] == [name]


def test_a_missing_name_in_the_cluster_zone_is_nxdomain(coredns, namespace):
    reply = coredns.ask(f"absent.{namespace}.svc.cluster.local.")
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert not reply.answer


@pytest.mark.parametrize("name, rdtype", [
    ("example.com.", "A"),
    ("kubernetes.io.", "AAAA"),
    ("localhost.", "A"),
    ("8.8.8.8.in-addr.arpa.", "PTR"),
])
def test_a_name_outside_the_cluster_is_refused(coredns, name, rdtype):
    # REFUSED, from the Corefile's zones alone: a server that tried to forward would answer
    # SERVFAIL after its upstream timed out (and the build has no forwarding, tested below).
    reply = coredns.ask(name, rdtype)
    assert reply.rcode() == dns.rcode.REFUSED
    assert not reply.answer


def test_the_build_cannot_forward(coredns_binary, tmp_path):
    plugins = subprocess.run([str(coredns_binary), "-plugins"], capture_output=True, text=True,
                             timeout=30, check=True).stdout
    listed = {line.strip() for line in plugins.splitlines() if line.strip()}
    assert {"bind", "cache", "errors", "health", "kubernetes", "log", "ready"} <= listed
    assert not listed & {"forward", "grpc", "etcd", "file", "secondary", "hosts"}, plugins

    # A Corefile naming an upstream does not load: the directive is not in this build.
    config = tmp_path / "Corefile"
    config.write_text(f".:{devcluster.free_port()} {{\n    bind 127.0.0.1\n    forward . 127.0.0.1:9\n}}\n")
    refused = subprocess.run([str(coredns_binary), "-conf", str(config)], capture_output=True,
                             text=True, timeout=30)
    assert refused.returncode != 0
    assert "Unknown directive 'forward'" in refused.stdout + refused.stderr
