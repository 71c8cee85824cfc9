"""The operator pod from the chart, on a real node, with N ServiceTokens: its memory under
the chart's limit while it mints them in a burst and after it is restarted, and whether the
kubelet ever killed or restarted it.

The chart is installed with its default resources (or ``--memory-limit``), N tokens across
100 accounts are created at once, and once all are Active the operator pod is deleted: its
replacement lists all N again and must settle (a new probe token minted) with no re-mint.
Memory comes from the container's own memory cgroup, sampled every second: RSS (what the
process holds) and the kernel's peak of usage (which also counts reclaimable page cache).
Exits non-zero when the container was OOM-killed or restarted. Needs what
`dev-cluster --node` needs (root, cgroups).

    python bench/node_scale.py [--tokens 10000] [--accounts 100] [--memory-limit 512Mi]
"""
from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import yaml
from kubernetes import client

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _harness import GROUP, VERSION, create_fleet, probe_settled, wait_all  # noqa: E402
from tests.e2e.conftest import CHART, IMAGE, NAMESPACE, RELEASE, Node, release_values  # noqa: E402
from tests.e2e.test_30_replicas import OPERATOR  # noqa: E402
from tokenwarden import devcluster, kube  # noqa: E402

MB = 1024 * 1024


class ContainerMemory:
    """Samples the memory cgroup of the operator's container (whichever pod runs it) every second."""

    def __init__(self, cluster, core: client.CoreV1Api):
        self._root = Path("/sys/fs/cgroup/memory") / cluster.cgroup_root.lstrip("/")
        self._core = core
        self._paths: dict[str, Path] = {}
        self.peak_rss: dict[str, int] = {}
        self.last: dict[str, dict[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _cgroup(self, container_id: str) -> Path | None:
        if container_id not in self._paths:
            found = next((p for p in self._root.rglob(container_id) if p.is_dir()), None)
            if found is None:
                return None
            self._paths[container_id] = found
        return self._paths[container_id]

    def sample(self) -> None:
        pods = self._core.list_namespaced_pod(NAMESPACE, label_selector=OPERATOR).items
        for pod in pods:
            for status in pod.status.container_statuses or []:
                if not status.container_id or status.state.running is None:
                    continue
                path = self._cgroup(status.container_id.split("://", 1)[-1])
                try:
                    stat = dict(line.split() for line in (path / "memory.stat").read_text().splitlines()) if path else {}
                    figures = {
                        "rss": int(stat.get("total_rss", 0)),
                        "peak_usage": int((path / "memory.max_usage_in_bytes").read_text()),
                        "limit": int((path / "memory.limit_in_bytes").read_text()),
                        "failcnt": int((path / "memory.failcnt").read_text()),
                    } if path else None
                except OSError:  # the container went while we read
                    continue
                if figures:
                    name = pod.metadata.name
                    self.last[name] = figures
                    self.peak_rss[name] = max(self.peak_rss.get(name, 0), figures["rss"])

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.sample()
            except Exception as error:  # noqa: BLE001 - a sample lost is a sample lost; say so
                print(f"memory sample failed: {error!r}", file=sys.stderr)


def _kills(core: client.CoreV1Api, pod: str) -> list[str]:
    """Why the pod's containers were restarted, if they were."""
    found = []
    for status in core.read_namespaced_pod(pod, NAMESPACE).status.container_statuses or []:
        terminated = status.last_state.terminated if status.last_state else None
        if status.restart_count or terminated:
            found.append(f"{status.name}: {status.restart_count} restarts, last "
                         f"{terminated.reason if terminated else 'unknown'}")
    return found


def _hashes(custom: client.CustomObjectsApi, namespace: str) -> dict[str, str]:
    listing = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens")["items"]
    return {o["metadata"]["name"]: (o.get("status") or {}).get("tokenHash") for o in listing}


def _running_operator(core: client.CoreV1Api, not_this: str | None = None) -> str:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for pod in core.list_namespaced_pod(NAMESPACE, label_selector=OPERATOR).items:
            statuses = pod.status.container_statuses or []
            if (pod.metadata.name != not_this and not pod.metadata.deletion_timestamp and statuses
                    and all(s.ready for s in statuses)):
                return pod.metadata.name
        time.sleep(1)
    raise TimeoutError("no ready operator pod in 300 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10000)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--memory-limit", help="the operator container's memory limit (default: the chart's)")
    args = parser.parse_args()
    n, accounts = args.tokens, args.accounts
    log = lambda *_: None  # noqa: E731
    devcluster.build_image(f"{IMAGE[0]}:{IMAGE[1]}", log=log)
    cluster = devcluster.start_node_cluster(images=(f"{IMAGE[0]}:{IMAGE[1]}",), log=log)
    try:
        node = Node(cluster.kubeconfig, str(cluster.node.kubectl), str(devcluster.ensure_helm(log)),
                    Path(tempfile.mkdtemp(prefix="tokenwarden-bench-node-")))
        values = release_values(secrets.token_hex(32))
        values["quotas"] = {"maxAccountsPerNamespace": accounts, "maxTokensPerAccount": -(-n // accounts) + 1}
        if args.memory_limit:
            values["operator"] = {"resources": {"requests": {"cpu": "100m", "memory": args.memory_limit},
                                                "limits": {"memory": args.memory_limit}}}
        (node.workdir / "values.yaml").write_text(yaml.safe_dump(values))
        node.helm("install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace", "--values",
                  str(node.workdir / "values.yaml"), "--wait", "--timeout", "5m")
        api = kube.load_api_client(str(cluster.kubeconfig))
        api.rest_client.pool_manager.connection_pool_kw["maxsize"] = 32
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        namespace = f"scale-{uuid.uuid4().hex[:6]}"
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
        with ContainerMemory(cluster, core) as memory:
            first = _running_operator(core)
            started = time.monotonic()
            create_fleet(custom, namespace, n, accounts)
            wait_all(api, namespace, "servicetokens", n, lambda o: (o.get("status") or {}).get("phase") == "Active",
                     timeout=3600)
            minted_in = time.monotonic() - started
            time.sleep(2)
            memory.sample()
            burst = dict(memory.last[first], peak_rss=memory.peak_rss[first])
            killed = _kills(core, first)
            print(f"{n} tokens across {accounts} accounts on the node, minted in {minted_in:.0f}s "
                  f"({n / minted_in:.0f}/s)")
            print(f"operator container memory limit: {burst['limit'] / MB:.0f} MB")
            print(f"burst: peak RSS {burst['peak_rss'] / MB:.0f} MB, kernel peak usage "
                  f"{burst['peak_usage'] / MB:.0f} MB, limit reached {burst['failcnt']} times", flush=True)
            hashes = _hashes(custom, namespace)

            restarted = time.monotonic()
            core.delete_namespaced_pod(first, NAMESPACE)
            second = _running_operator(core, not_this=first)
            probe_settled(api, namespace, n)
            settle = time.monotonic() - restarted
            time.sleep(30)  # what it holds once settled
            memory.sample()
            after = dict(memory.last[second], peak_rss=memory.peak_rss[second])
            killed += _kills(core, second)
            now = _hashes(custom, namespace)
            remints = sum(1 for name, digest in hashes.items() if now.get(name) != digest)
    finally:
        cluster.stop()
    print(f"restarted pod: peak RSS {after['peak_rss'] / MB:.0f} MB, kernel peak usage "
          f"{after['peak_usage'] / MB:.0f} MB, settled RSS {after['rss'] / MB:.0f} MB, "
          f"limit reached {after['failcnt']} times")
    print(f"restarted operator settled (probe token minted) in {settle:.1f}s, tokens re-minted: {remints}")
    if killed:
        print("KILLED OR RESTARTED: " + "; ".join(killed))
        return 1
    print("the operator container was never OOM-killed or restarted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
