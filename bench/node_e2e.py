"""Figures of the chart on a real node, medians of several rounds on one node cluster:

- helm install (with --wait) to the example agent's first 200;
- how long the kubelet takes to refresh a rotated Secret in a pod nobody restarts;
- operator failover: the active replica deleted (or gone) to the next token Active;
- the image's size.

Each round installs the chart, applies examples/agent-daemonset.yaml, rotates a token
mounted by a pod that is not restarted, scales the operator to two replicas, deletes the
active one, and uninstalls. Needs what `dev-cluster --node` needs (root, cgroups).

    python bench/node_e2e.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.conftest import CHART, EXAMPLES, IMAGE, NAMESPACE, RELEASE, Node, release_values  # noqa: E402
from tests.e2e.test_20_agent import _probe_workload, _running_pods, _short, _token  # noqa: E402
from tests.e2e.test_30_replicas import OPERATOR, _active, _apply_token, _ready_operators  # noqa: E402
from tokenwarden import devcluster  # noqa: E402


def _round(node: Node) -> dict[str, float]:
    figures: dict[str, float] = {}
    values = node.workdir / "values.yaml"
    values.write_text(yaml.safe_dump(release_values(secrets.token_hex(32))))
    started = time.monotonic()
    node.helm("install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace", "--values", str(values),
              "--wait", "--timeout", "5m")
    node.kubectl("apply", "-f", str(EXAMPLES / "agent-daemonset.yaml"))
    pod = node.wait_until("an agent pod", lambda: next(iter(
        _running_pods(node, "observability", "app.kubernetes.io/name=profiling-agent")), None))["metadata"]["name"]
    node.wait_until("the agent's first 200", lambda: "status=200" in node.logs("observability", pod), interval=0.2)
    figures["helm install to the agent's first 200"] = time.monotonic() - started

    ns = f"bench-{uuid.uuid4().hex[:6]}"
    node.kubectl("create", "namespace", ns)
    node.kubectl("apply", "-f", "-", input=_probe_workload(ns, "steady", "steady-token", ttl="24h", restart=False))
    pod = node.wait_until("the steady agent", lambda: next(iter(_running_pods(node, ns, "app=steady")), None))[
        "metadata"]["name"]
    first = _token(node, ns, "steady")["status"]["tokenHash"]
    node.wait_until("its 200", lambda: f"token=sha256:{_short(first)}" in node.logs(ns, pod))
    node.kubectl("annotate", "servicetokens.tokenwarden.io", "-n", ns, "steady", "tokenwarden.io/rotate=bench")
    second = node.wait_until("the rotation", lambda: (
        lambda h: h if h != first else None)(_token(node, ns, "steady")["status"].get("tokenHash")), interval=0.2)
    rotated = time.monotonic()
    node.wait_until("the refreshed file", lambda: f"token=sha256:{_short(second)}" in node.logs(ns, pod),
                    timeout=300, interval=0.5)
    figures["kubelet refresh of a rotated Secret"] = time.monotonic() - rotated

    node.helm("upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values", "--set", "operator.replicas=2",
              "--wait", "--timeout", "5m")
    node.wait_until("two replicas", lambda: len(_ready_operators(node)) == 2 and len(node.pods(NAMESPACE, OPERATOR)) == 2)
    node.kubectl("apply", "-f", "-", input=f"""
apiVersion: tokenwarden.io/v1alpha1
kind: ServiceAccount
metadata: {{name: fleet, namespace: {ns}}}
---
apiVersion: tokenwarden.io/v1alpha1
kind: RoleBinding
metadata: {{name: fleet, namespace: {ns}}}
spec: {{serviceAccountName: fleet, roles: [writer]}}
""")
    _apply_token(node, ns, "before")
    node.wait_until("before Active", lambda: _active(node, ns, "before"))
    actor = next(p for p in _ready_operators(node) if "Handler 'mint' succeeded" in node.logs(NAMESPACE, p))
    deleted = time.monotonic()
    node.kubectl("delete", "pod", "-n", NAMESPACE, actor, "--wait=false")
    node.kubectl("wait", "--for=delete", "pod", "-n", NAMESPACE, actor, "--timeout=120s")
    gone = time.monotonic()
    _apply_token(node, ns, "after")
    node.wait_until("after Active", lambda: _active(node, ns, "after"), interval=0.1)
    figures["failover: active pod deleted to the next token Active"] = time.monotonic() - deleted
    figures["failover: active pod gone to the next token Active"] = time.monotonic() - gone
    _clean(node, ns)
    return figures


def _clean(node: Node, ns: str) -> None:
    """Remove the round's tokens while the operator runs (their finalizers need it), then
    the release and its namespace."""
    node.kubectl("delete", "namespace", ns, "observability", "--wait=true", "--timeout=180s")
    node.kubectl("delete", "servicetokens.tokenwarden.io", "--all", "-n", NAMESPACE, "--wait=true", "--timeout=120s")
    node.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "5m")
    node.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=180s", timeout=240)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    log = lambda *_: None  # noqa: E731
    image = devcluster.build_image(f"{IMAGE[0]}:{IMAGE[1]}", log=log)
    cluster = devcluster.start_node_cluster(images=(f"{IMAGE[0]}:{IMAGE[1]}",), log=log)
    try:
        node = Node(cluster.kubeconfig, str(cluster.node.kubectl), str(devcluster.ensure_helm(log)),
                    Path(tempfile.mkdtemp(prefix="tokenwarden-bench-node-")))
        rounds = []
        for i in range(args.rounds):
            rounds.append(_round(node))
            print(f"round {i + 1}: " + ", ".join(f"{k} {v:.1f} s" for k, v in rounds[-1].items()), flush=True)
    finally:
        cluster.stop()
    print(f"\nmedians of {args.rounds} rounds:")
    for key in rounds[0]:
        values = [r[key] for r in rounds]
        print(f"  {key}: {statistics.median(values):.1f} s (runs: {', '.join(f'{v:.1f}' for v in values)})")
    print(f"  image {image.name}: {image.size_mb:.0f} MB")


if __name__ == "__main__":
    main()
