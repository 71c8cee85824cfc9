"""operator.replicas: 2: exactly one replica acts; when it goes, the other takes over,
and no token is minted twice."""
from __future__ import annotations

import time
import uuid

from .conftest import CHART, NAMESPACE, OPERATOR, RELEASE, ready_operators


def _apply_token(node, namespace: str, name: str) -> None:
    node.kubectl("apply", "-f", "-", input=f"""
apiVersion: tokenwarden.io/v1alpha1
kind: ServiceToken
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{serviceAccountName: fleet, ttl: 1h}}
""")


def _active(node, namespace: str, name: str):
    token = node.json("get", "servicetokens.tokenwarden.io", "-n", namespace, name)
    return token if token.get("status", {}).get("phase") == "Active" else None


def _minted_events(node, namespace: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in node.json("get", "events", "-n", namespace)["items"]:
        if event.get("reason") == "Minted":
            name = event["involvedObject"]["name"]
            counts[name] = counts.get(name, 0) + event.get("count", 1)
    return counts


def test_two_replicas_one_acts_and_the_other_takes_over(node, release):
    node.helm("upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values",
              "--set", "operator.replicas=2", "--wait", "--timeout", "5m")
    # The replaced replica serves a few seconds into its deletion (preStop), active meanwhile.
    node.wait_until("two operator replicas ready, the replaced one gone", lambda: len(ready_operators(node)) == 2
                    and len(node.pods(NAMESPACE, OPERATOR)) == 2)
    ns = f"fleet-{uuid.uuid4().hex[:6]}"
    node.kubectl("create", "namespace", ns)
    # A ready pod reaches the Service's rules a moment later (endpoints, then kube-proxy).
    node.wait_until("the webhook answers through its Service", lambda: node.kubectl(
        "create", "--dry-run=server", "-f", "-", check=False, input=f"""
apiVersion: tokenwarden.io/v1alpha1
kind: ServiceAccount
metadata: {{name: probe, namespace: {ns}}}
""").returncode == 0)
    node.kubectl("apply", "-f", "-", input=f"""
apiVersion: tokenwarden.io/v1alpha1
kind: ServiceAccount
metadata: {{name: fleet, namespace: {ns}}}
spec: {{}}
---
apiVersion: tokenwarden.io/v1alpha1
kind: RoleBinding
metadata: {{name: fleet, namespace: {ns}}}
spec: {{serviceAccountName: fleet, roles: [writer]}}
""")
    for i in range(2):
        _apply_token(node, ns, f"before-{i}")
    ids = {}
    for i in range(2):
        ids[f"before-{i}"] = node.wait_until(f"before-{i} Active", lambda: _active(node, ns, f"before-{i}"))[
            "status"]["tokenId"]

    # Only the active replica runs handlers; the other stands by (kopf peering).
    minted = {pod: node.logs(NAMESPACE, pod).count("Handler 'mint' succeeded") for pod in ready_operators(node)}
    actors = [pod for pod, count in minted.items() if count]
    assert len(actors) == 1, f"mint handlers run per replica: {minted}"
    actor = actors[0]
    assert minted[actor] >= 2

    started = time.monotonic()
    node.kubectl("delete", "pod", "-n", NAMESPACE, actor, "--wait=false")
    node.kubectl("wait", "--for=delete", "pod", "-n", NAMESPACE, actor, "--timeout=120s")
    gone = time.monotonic()
    _apply_token(node, ns, "after")
    node.wait_until("a token minted after the active replica went", lambda: _active(node, ns, "after"),
                    timeout=240)
    node.record("operator failover: active pod deleted to the next token Active (5 s preStop included)",
                time.monotonic() - started)
    node.record("operator failover: active pod gone to the next token Active", time.monotonic() - gone)
    takers = [pod for pod in ready_operators(node) if "Handler 'mint' succeeded" in node.logs(NAMESPACE, pod)]
    assert takers and actor not in takers

    for name, token_id in ids.items():
        status = node.json("get", "servicetokens.tokenwarden.io", "-n", ns, name).get("status", {})
        assert (status.get("phase"), status.get("tokenId")) == ("Active", token_id), status
    minted = node.wait_until("Minted events posted", lambda: (
        lambda counts: counts if set(counts) == {"before-0", "before-1", "after"} else None)(
        _minted_events(node, ns)))
    assert minted == {"before-0": 1, "before-1": 1, "after": 1}
    node.kubectl("delete", "namespace", ns, "--wait=false")
