"""The Corefile that the local cluster's DNS runs with: cluster.local and the reverse zones of
the cluster's ranges from the API server, bound to one address, and no upstream."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from tokenwarden import devcluster
from tokenwarden.devcluster import _cluster
from tokenwarden.devcluster._dns import SERVICE_CIDR, reverse_zones

ROOT = Path(__file__).resolve().parents[2]


def render(**kwargs) -> str:
    args = {"kubeconfig": Path("/run/dns/kubeconfig"), "listen_ip": "10.200.0.1",
            "health_port": 8053, "ready_port": 8181, **kwargs}
    return devcluster.corefile(**args)


def blocks(text: str) -> list[str]:
    """The server blocks' keys (the lines that open a block at the top level)."""
    return [line for line in text.splitlines() if line.endswith("{") and not line.startswith(" ")]


def test_serves_cluster_local_and_the_service_reverse_zone_on_the_given_port():
    text = render(port=5353)
    assert blocks(text) == ["cluster.local:5353 0.0.10.in-addr.arpa:5353 {"]
    assert "    kubernetes cluster.local 0.0.10.in-addr.arpa {\n" in text
    assert "        pods insecure\n" in text
    assert "        ttl 5\n" in text
    assert "    cache 5\n" in text
    assert "    errors\n" in text
    assert "    log\n" not in text
    assert "    log\n" in render(log_queries=True)


def test_port_53_by_default():
    assert blocks(render()) == ["cluster.local:53 0.0.10.in-addr.arpa:53 {"]


def test_reads_the_api_server_through_the_kubeconfig_and_its_context():
    assert '        kubeconfig "/run/dns/kubeconfig" "tokenwarden-dev"\n' in render()
    text = render(kubeconfig=Path("/tmp/a dir/kube config"), context="kind-tests")
    assert '        kubeconfig "/tmp/a dir/kube config" "kind-tests"\n' in text


@pytest.mark.parametrize("bad", ['/tmp/a"b', "/tmp/{$HOME}", "/tmp/a\nforward . 1.1.1.1", "/tmp/a\\b"])
def test_a_path_that_would_change_the_corefile_is_refused(bad):
    with pytest.raises(ValueError, match="cannot be written into a Corefile"):
        render(kubeconfig=Path(bad))
    with pytest.raises(ValueError, match="cannot be written into a Corefile"):
        render(context=bad)


def test_binds_dns_health_and_ready_to_the_listen_address_only():
    text = render(listen_ip="127.0.0.1", health_port=18053, ready_port=18181)
    assert "    bind 127.0.0.1\n" in text
    assert "    health 127.0.0.1:18053\n" in text
    assert "    ready 127.0.0.1:18181\n" in text
    v6 = render(listen_ip="fd00::53")
    assert "    bind fd00::53\n" in v6
    assert "    health [fd00::53]:8053\n" in v6


def test_no_upstream_and_nothing_outside_the_cluster_zones():
    text = render(pod_cidr="10.244.0.0/16")
    for plugin in ("forward", "grpc", "proxy", "etcd", "file", "hosts", "template", "fallthrough"):
        assert not re.search(rf"^\s*{plugin}\b", text, re.M), plugin
    # No root zone: a name outside these zones matches no block, and CoreDNS refuses it.
    assert blocks(text) == ["cluster.local:53 0.0.10.in-addr.arpa:53 244.10.in-addr.arpa:53 {"]
    assert "    kubernetes cluster.local 0.0.10.in-addr.arpa 244.10.in-addr.arpa {\n" in text


def test_pod_range_inside_the_service_reverse_zone_is_not_repeated():
    text = render(service_cidr="10.0.0.0/16", pod_cidr="10.0.128.0/24")
    assert blocks(text) == ["cluster.local:53 0.10.in-addr.arpa:53 128.0.10.in-addr.arpa:53 {"]
    text = render(service_cidr="10.0.0.0/24", pod_cidr="10.0.0.0/24")
    assert blocks(text) == ["cluster.local:53 0.0.10.in-addr.arpa:53 {"]


@pytest.mark.parametrize("kwargs, message", [
    ({"listen_ip": "node"}, "does not appear to be an IPv4 or IPv6 address"),
    ({"port": 0}, "port 0 is not a port number"),
    ({"ready_port": 70000}, "ready_port 70000 is not a port number"),
    ({"health_port": 8181}, "must be three different ports"),
    ({"port": 8053}, "must be three different ports"),
    ({"service_cidr": "10.0.0.1/24"}, "has host bits set"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        render(**kwargs)


@pytest.mark.parametrize("cidr, zones", [
    ("10.0.0.0/24", ["0.0.10.in-addr.arpa"]),
    ("10.244.0.0/16", ["244.10.in-addr.arpa"]),
    ("10.0.0.0/8", ["10.in-addr.arpa"]),
    ("10.200.0.0/23", ["0.200.10.in-addr.arpa", "1.200.10.in-addr.arpa"]),
    ("10.96.0.0/12", [f"{n}.10.in-addr.arpa" for n in range(96, 112)]),
    ("10.0.0.7/32", ["7.0.0.10.in-addr.arpa"]),
    ("fd00:10:96::/112", ["0." * 16 + "6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa"]),
    ("fc00::/7", ["c.f.ip6.arpa", "d.f.ip6.arpa"]),
])
def test_reverse_zones_end_on_a_label(cidr, zones):
    assert reverse_zones(cidr) == zones


def test_service_range_is_the_control_planes():
    assert f'"--service-cluster-ip-range={SERVICE_CIDR}"' in inspect.getsource(_cluster.ControlPlane)


def test_the_build_has_no_plugin_that_asks_another_server():
    main = (ROOT / "hack" / "coredns" / "main.go").read_text()
    imported = set(re.findall(r'_ "github.com/coredns/coredns/plugin/(\w+)"', main))
    assert imported == {"bind", "cache", "errors", "health", "kubernetes", "log", "ready"}
    assert "core/plugin" not in main  # the bundle of every plugin
    ordered = re.search(r"var directives = \[\]string\{(.*?)\}", main, re.S).group(1)
    assert set(re.findall(r'"(\w+)"', ordered)) == imported
