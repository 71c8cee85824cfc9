"""helm upgrade with the same values changes nothing; an upgrade that replaces the operator's
pods, and an eviction of the active one, refuse no write (the chart's defaults: two replicas,
rolling updates, a PodDisruptionBudget, a preStop); helm uninstall leaves nothing
cluster-scoped behind but the CRDs it is told to keep."""
from __future__ import annotations

import base64
import json
import threading
import time
import uuid

from kubernetes import client

from tokenwarden import kube
from tokenwarden.tokens import hash_token

from .conftest import CHART, NAMESPACE, RELEASE, ready_operators as _ready_operators

INSTANCE = f"app.kubernetes.io/instance={RELEASE}"
OPERATOR = f"{INSTANCE},app.kubernetes.io/component=operator"


def _webhook_ca(node) -> list[str]:
    configs = node.json("get", "validatingwebhookconfigurations", "-l", INSTANCE)["items"]
    return [w["clientConfig"].get("caBundle") for c in configs for w in c["webhooks"]]


def _authenticator_tls(node) -> tuple[dict, dict]:
    """The authenticator's certificate and the CA published for its clients."""
    secret = node.json("get", "secret", "-n", NAMESPACE, f"{RELEASE}-authenticator-tls")["data"]
    ca = node.json("get", "configmap", "-n", NAMESPACE, f"{RELEASE}-authenticator-ca")["data"]
    return secret, ca


def _pods(node) -> set[str]:
    return {p["metadata"]["uid"] for p in node.pods(NAMESPACE, INSTANCE) if not p["metadata"].get("deletionTimestamp")}


def _bootstrap_expiry(node) -> str:
    return node.json("get", "servicetokens.tokenwarden.io", "-n", NAMESPACE,
                     "tokenwarden-bootstrap")["status"]["expiresAt"]


def test_upgrade_with_the_same_values_changes_nothing(node, release):
    ca, pods, expiry = _webhook_ca(node), _pods(node), _bootstrap_expiry(node)
    authenticator_tls = _authenticator_tls(node)
    generations = {d["metadata"]["name"]: d["metadata"]["generation"]
                   for d in node.json("get", "deployments", "-n", NAMESPACE, "-l", INSTANCE)["items"]}
    assert ca and all(ca)

    node.helm("upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values", "--wait", "--timeout", "5m")

    assert _webhook_ca(node) == ca, "helm upgrade made a new webhook CA"
    assert _authenticator_tls(node) == authenticator_tls, "helm upgrade made a new authenticator certificate or CA"
    assert {d["metadata"]["name"]: d["metadata"]["generation"]
            for d in node.json("get", "deployments", "-n", NAMESPACE, "-l", INSTANCE)["items"]} == generations
    assert _pods(node) == pods, "helm upgrade restarted pods"
    assert _bootstrap_expiry(node) == expiry


class Writer(threading.Thread):
    """Creates ServiceTokens one after another until stopped, as a CI job or a GitOps sync would
    while the cluster is maintained; every create goes through the admission webhook (failure
    policy Fail), so a moment without a replica to answer is a refused write."""

    PAUSE = 0.2  # seconds between creates: a steady stream the shared machine can take

    def __init__(self, node, namespace: str) -> None:
        super().__init__(daemon=True)
        self.custom = client.CustomObjectsApi(kube.load_api_client(str(node.kubeconfig)))
        self.namespace = namespace
        self.created: list[str] = []
        self.refusals: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            name = f"w-{len(self.created) + len(self.refusals):04d}"
            body = {"apiVersion": "tokenwarden.io/v1alpha1", "kind": "ServiceToken",
                    "metadata": {"name": name}, "spec": {"roles": ["writer"], "ttl": "1h"}}
            try:
                self.custom.create_namespaced_custom_object("tokenwarden.io", "v1alpha1", self.namespace,
                                                            "servicetokens", body, _request_timeout=30)
            except Exception as exc:  # noqa: BLE001  (counted and shown: any refusal fails the test)
                self.refusals.append(f"{name}: {getattr(exc, 'body', None) or exc}")
            else:
                self.created.append(name)
            self.halt.wait(self.PAUSE)

    def wrote(self, more: int, node) -> None:
        """Returns once ``more`` writes were made from now (created or refused)."""
        target = len(self.created) + len(self.refusals) + more
        node.wait_until(f"{more} more writes", lambda: len(self.created) + len(self.refusals) >= target, timeout=120,
                        interval=0.2)

    def __enter__(self) -> "Writer":
        self.start()
        return self

    def __exit__(self, *_) -> None:
        self.halt.set()
        self.join(60)


def _settled_operators(node) -> list[str] | None:
    """The operator pods once exactly two exist and both are ready; None before."""
    pods = node.pods(NAMESPACE, OPERATOR)
    ready = _ready_operators(node)
    return ready if len(ready) == 2 and len(pods) == 2 else None


def _writes_namespace(node) -> str:
    namespace = f"writes-{uuid.uuid4().hex[:6]}"
    node.kubectl("create", "namespace", namespace)
    # A ready pod reaches the Service's rules a moment later (endpoints, then kube-proxy).
    node.wait_until("the webhook answers through its Service", lambda: node.kubectl(
        "create", "--dry-run=server", "-f", "-", check=False, input=f"""
apiVersion: tokenwarden.io/v1alpha1
kind: ServiceToken
metadata: {{name: probe, namespace: {namespace}}}
spec: {{roles: [writer]}}
""").returncode == 0)
    return namespace


def _minted_once(node, namespace: str, names: list[str]) -> int:
    """Every token written ends Active, minted once: the token in its Secret is the one its status
    names (a second mint would have replaced one of the two), and no token has two Minted
    events. Returns how many tokens have no Minted event: kopf posts events in the background,
    and a replica that stops drops those it had not posted yet."""
    def tokens() -> dict | None:
        items = node.json("get", "servicetokens.tokenwarden.io", "-n", namespace)["items"]
        found = {t["metadata"]["name"]: t.get("status") or {} for t in items}
        return found if all(found.get(name, {}).get("phase") == "Active" for name in names) else None

    statuses = node.wait_until(f"all {len(names)} tokens Active", tokens, timeout=300, interval=3)
    secrets = {s["metadata"]["name"]: s for s in node.json("get", "secrets", "-n", namespace)["items"]}
    mismatched = [name for name in names
                  if hash_token(base64.b64decode(secrets[statuses[name]["secretName"]]["data"]["token"]).decode())
                  != statuses[name]["tokenHash"]]
    assert mismatched == [], f"the Secret's token is not the one the status names: {mismatched[:5]}"
    assert len({statuses[name]["tokenId"] for name in names}) == len(names)

    counts: dict[str, int] = {}
    for event in node.json("get", "events", "-n", namespace)["items"]:
        if event.get("reason") == "Minted":
            name = event["involvedObject"]["name"]
            counts[name] = counts.get(name, 0) + event.get("count", 1)
    assert {name: n for name, n in counts.items() if n > 1} == {}, "minted twice"
    return len(set(names) - set(counts))


def _write_through(node, what: str, disturb) -> None:
    """Write tokens in a loop while ``disturb()`` runs (it returns once the disturbance is over:
    two operator pods ready again), then check that none was refused and each minted once."""
    node.wait_until("two operator pods ready", lambda: _settled_operators(node), timeout=300)
    namespace = _writes_namespace(node)
    with Writer(node, namespace) as writer:
        writer.wrote(10, node)  # writes before the disturbance begins
        started = time.monotonic()
        disturb()
        lasted = time.monotonic() - started
        writer.wrote(10, node)  # and after it ends
    node.record(f"{what}: disturbance (until two operator pods are ready again)", lasted)
    node.count(f"{what}: writes in the loop", len(writer.created) + len(writer.refusals))
    node.count(f"{what}: writes refused", len(writer.refusals))
    assert writer.refusals == [], f"{len(writer.refusals)} of {len(writer.created) + len(writer.refusals)} " \
                                  f"writes refused, the first: {writer.refusals[:3]}"
    assert len(writer.created) > 20
    node.count(f"{what}: tokens without a Minted event (posted by a replica that stopped)",
               _minted_once(node, namespace, writer.created))
    node.kubectl("delete", "namespace", namespace, "--wait=false")


def test_an_upgrade_that_replaces_the_operator_pods_refuses_no_write(node, release):
    before = set(_ready_operators(node))

    def upgrade() -> None:
        # A new pod annotation: a new pod template, so a rollout of both operator pods.
        node.helm("upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values", "--set-string",
                  f"operator.podAnnotations.e2e-rollout={uuid.uuid4().hex[:8]}", "--wait", "--timeout", "5m")
        node.wait_until("the old operator pods gone, two new ones ready", lambda: (
            lambda ready: ready and not set(ready) & before)(_settled_operators(node)), timeout=300)

    _write_through(node, "helm upgrade replacing the operator pods", upgrade)


def _active_operator(node) -> str:
    """The operator pod kopf's peering made active: the highest priority among the live pods."""
    peers = node.json("get", "clusterkopfpeerings.kopf.dev", RELEASE).get("status") or {}
    pods = set(_ready_operators(node))
    live = {peer: record for peer, record in peers.items() if peer in pods and record}
    assert len(live) == 2, f"peering records: {peers}, pods: {pods}"
    return max(live, key=lambda peer: live[peer]["priority"])


def test_an_eviction_of_the_active_operator_refuses_no_write(node, release):
    # Both pods ready: the budget (minAvailable 1) allows one disruption.
    node.wait_until("the operator's budget allows a disruption", lambda: node.json(
        "get", "poddisruptionbudget", "-n", NAMESPACE, f"{RELEASE}-operator")["status"].get(
        "disruptionsAllowed", 0) >= 1, timeout=120)
    active = _active_operator(node)

    def evict() -> None:
        eviction = {"apiVersion": "policy/v1", "kind": "Eviction",
                    "metadata": {"name": active, "namespace": NAMESPACE}}
        node.kubectl("create", "--raw", f"/api/v1/namespaces/{NAMESPACE}/pods/{active}/eviction", "-f", "-",
                     input=json.dumps(eviction))
        node.wait_until("the evicted pod gone, two operator pods ready", lambda: (
            lambda ready: ready and active not in ready)(_settled_operators(node)), timeout=300)

    _write_through(node, "eviction of the active operator pod", evict)
    assert _active_operator(node) != active


def test_a_drain_of_the_only_node_stops_at_the_last_operator_pod(node, release):
    """A drain (cordon, then evictions as `kubectl drain` makes them) of the operator pods. With
    one node the evicted pod's replacement cannot be scheduled, so the budget must refuse the
    second eviction: the drain gives up, and the last pod answers throughout. (A drain that
    completes needs a second node for the replacements, which the node cluster does not have.)"""
    name = node.json("get", "nodes")["items"][0]["metadata"]["name"]

    def drain() -> None:
        result = node.kubectl("drain", name, f"--pod-selector={OPERATOR.split(',', 1)[1]},{INSTANCE}",
                              "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=30s", check=False,
                              timeout=120)
        node.kubectl("uncordon", name)
        assert result.returncode != 0, f"the drain took both operator pods:\n{result.stdout}"
        assert "disruption budget" in result.stdout + result.stderr, result.stdout + result.stderr
        node.wait_until("two operator pods ready after the uncordon", lambda: _settled_operators(node),
                        timeout=300)

    _write_through(node, "drain of the only node (the operator pods; stops at the last one)", drain)


def test_uninstall_leaves_nothing_cluster_scoped_but_the_kept_crds(node, release):
    node.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "5m")
    kinds = node.kubectl("api-resources", "--namespaced=false", "--verbs=list", "-o", "name").stdout.split()
    left = {}
    for kind in kinds:
        items = node.json("get", kind, "-l", INSTANCE)["items"]
        if items:
            left[kind] = sorted(i["metadata"]["name"] for i in items)
    left.pop("customresourcedefinitions.apiextensions.k8s.io", None)
    assert left == {}, f"left behind: {left}"
    # crds.keep (the default): the CRDs, and so every token, outlive the release.
    crds = {c["metadata"]["name"] for c in node.json("get", "customresourcedefinitions")["items"]}
    assert {"servicetokens.tokenwarden.io", "serviceaccounts.tokenwarden.io", "rolebindings.tokenwarden.io",
            "ingestionapikeys.tokenwarden.io"} <= crds
    assert not node.json("get", "validatingwebhookconfigurations")["items"] or all(
        "tokenwarden" not in c["metadata"]["name"] for c in node.json("get", "validatingwebhookconfigurations")["items"])
