"""Cluster DNS for the local node cluster: CoreDNS built from hack/coredns, run as a plain process.

The build has only the plugins cluster DNS needs (see hack/coredns/main.go). It has no
``forward`` plugin, so it never asks an upstream resolver: names under ``cluster.local``
and the reverse zones of the cluster's ranges come from the API server, and every other
name is refused.
"""
from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path

from tokenwarden.devcluster._build import (
    _cached_build,
    _cache_key,
    _go,
    _go_build,
    _go_version,
    cache_root,
    hack_dir,
    pinned_version,
)
from tokenwarden.devcluster._cluster import CLUSTER_NAME

CLUSTER_DOMAIN = "cluster.local"
# kube-apiserver's --service-cluster-ip-range in the local control plane (_cluster.py).
SERVICE_CIDR = "10.0.0.0/24"
# Seconds an answer lives (in the kubernetes plugin's records and the cache).
TTL = 5

_MODULE = "coredns"
_SOURCES = ("main.go",)


def ensure_coredns(log=print) -> Path:
    """The CoreDNS pinned in hack/coredns, built once and cached like the control plane."""
    hack = hack_dir()
    go = _go()
    module = hack / _MODULE
    version = pinned_version(module / "go.mod", "github.com/coredns/coredns")
    # go.mod and go.sum pin the dependencies; main.go picks the plugins: all three make the key.
    digest = hashlib.sha256(_cache_key(hack, _go_version(go), (_MODULE,)).encode())
    for name in _SOURCES:
        digest.update(name.encode())
        digest.update((module / name).read_bytes())
    target = cache_root() / "coredns" / f"{version}-{digest.hexdigest()[:16]}"
    # The main package is this repository's own: leave out VCS stamping, which fails
    # wherever git refuses to read the checkout (another owner, no .git).
    _cached_build(target, version, f"coredns {version}", lambda staging: _go_build(
        go, module, str(staging / "coredns"), ["-buildvcs=false", "."], "-s -w"), log)
    return target / "coredns"


def reverse_zones(cidr: str) -> list[str]:
    """The in-addr.arpa (or ip6.arpa) zones that together cover ``cidr``.

    A reverse zone ends on a label, so a prefix between octet (IPv4) or nibble (IPv6)
    boundaries becomes the zones of its subnets at the next boundary:
    10.96.0.0/12 is 96.10.in-addr.arpa through 111.10.in-addr.arpa.
    """
    network = ipaddress.ip_network(cidr, strict=True)
    step = 8 if network.version == 4 else 4
    boundary = -(-network.prefixlen // step) * step
    zones = []
    for subnet in network.subnets(new_prefix=boundary):
        labels = subnet.network_address.reverse_pointer.split(".")
        # reverse_pointer names the whole address; a zone keeps the labels of its prefix only.
        zones.append(".".join(labels[len(labels) - 2 - boundary // step:]))
    return zones


def _token(value: str, what: str) -> str:
    """``value`` as one quoted Corefile token."""
    if not value or any(c in value for c in '"\\{}') or any(ord(c) < 0x20 for c in value):
        raise ValueError(f"{what} {value!r} cannot be written into a Corefile: "
                         'it is empty or has a quote, a backslash, a brace or a control character')
    return f'"{value}"'


def corefile(
    kubeconfig: Path,
    listen_ip: str,
    port: int = 53,
    *,
    health_port: int,
    ready_port: int,
    context: str = CLUSTER_NAME,
    service_cidr: str = SERVICE_CIDR,
    pod_cidr: str | None = None,
    log_queries: bool = False,
) -> str:
    """A Corefile serving ``cluster.local`` and the reverse zones of the service (and pod) range.

    CoreDNS listens on ``listen_ip`` only: DNS on ``port``, ``/health`` on ``health_port``
    and ``/ready`` (ready once it has listed the cluster's Services) on ``ready_port``. It
    reads the API server through ``kubeconfig`` (its ``context``). A pod's ``a-b-c-d.<ns>.pod``
    name answers with the address it spells (``pods insecure``, as kube-dns did, without
    watching pods). There is no upstream: any other name is refused (rcode REFUSED).
    ``log_queries`` logs each query.
    """
    ip = ipaddress.ip_address(listen_ip)
    for name, value in (("port", port), ("health_port", health_port), ("ready_port", ready_port)):
        if not 0 < value < 65536:
            raise ValueError(f"{name} {value} is not a port number")
    if len({port, health_port, ready_port}) < 3:
        raise ValueError(f"port {port}, health_port {health_port} and ready_port {ready_port} "
                         "must be three different ports (all are TCP on the same address)")
    http_host = f"[{ip}]" if ip.version == 6 else str(ip)
    zones = [CLUSTER_DOMAIN]
    for cidr in (service_cidr, pod_cidr):
        if cidr:
            zones += [zone for zone in reverse_zones(cidr) if zone not in zones]
    keys = " ".join(f"{zone}:{port}" for zone in zones)
    lines = [
        "# Cluster DNS: names under cluster.local, and the reverse zones of the cluster's",
        "# ranges, come from the API server. There is no upstream: other names are refused.",
        f"{keys} {{",
        f"    bind {ip}",
        "    errors",
        *(["    log"] if log_queries else []),
        f"    health {http_host}:{health_port}",
        f"    ready {http_host}:{ready_port}",
        f"    kubernetes {' '.join(zones)} {{",
        f"        kubeconfig {_token(str(kubeconfig), 'kubeconfig')} {_token(context, 'context')}",
        "        pods insecure",
        f"        ttl {TTL}",
        "    }",
        f"    cache {TTL}",
        "}",
    ]
    return "\n".join(lines) + "\n"
