"""helm upgrade with the same values changes nothing; helm uninstall leaves nothing
cluster-scoped behind but the CRDs it is told to keep."""
from __future__ import annotations

from .conftest import CHART, NAMESPACE, RELEASE

INSTANCE = f"app.kubernetes.io/instance={RELEASE}"


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
