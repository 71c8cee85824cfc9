"""helm install with an authentication.yaml: the chart's pods run from the image, under
their own RBAC, as 10001 with a read-only root, and admission goes through the Service."""
from __future__ import annotations


import pytest

from .conftest import NAMESPACE, RELEASE

COMPONENTS = ("operator", "authenticator")


def _deployment(node, component: str) -> dict:
    return node.json("get", "deployment", "-n", NAMESPACE, f"{RELEASE}-{component}")


@pytest.mark.parametrize("component", COMPONENTS)
def test_deployment_is_available(node, release, component):
    status = _deployment(node, component)["status"]
    available = {c["type"]: c["status"] for c in status.get("conditions", [])}
    assert available.get("Available") == "True"
    assert status.get("readyReplicas") == status.get("replicas")


@pytest.mark.parametrize("component", COMPONENTS)
def test_runs_as_10001_with_a_read_only_root(node, release, component):
    pods = node.pods(NAMESPACE, f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}")
    assert pods, f"no {component} pod"
    for pod in pods:
        name = pod["metadata"]["name"]
        # Asked of the running process, not read off the spec.
        uid = node.kubectl("exec", "-n", NAMESPACE, name, "--", "python", "-c",
                           "import os; print(os.getuid(), os.getgid())").stdout.split()
        assert uid == ["10001", "10001"]
        write = node.kubectl("exec", "-n", NAMESPACE, name, "--", "python", "-c",
                             "open('/probe', 'w')", check=False)
        assert write.returncode != 0 and "Read-only file system" in write.stderr


def test_no_tokenwarden_process_holds_an_admin_credential(node, release):
    """Each pod runs as its own ServiceAccount, bound to the chart's roles only."""
    for component in COMPONENTS:
        spec = _deployment(node, component)["spec"]["template"]["spec"]
        assert spec["serviceAccountName"] == f"{RELEASE}-{component}"
        bindings = node.json("get", "clusterrolebindings")["items"]
        granted = {b["roleRef"]["name"] for b in bindings
                   if any(s.get("name") == f"{RELEASE}-{component}" and s.get("namespace") == NAMESPACE
                          for s in b.get("subjects") or [])}
        assert granted and "cluster-admin" not in granted
        allowed = node.kubectl("auth", "can-i", "*", "*",
                               f"--as=system:serviceaccount:{NAMESPACE}:{RELEASE}-{component}", check=False)
        assert allowed.stdout.strip() == "no"


def test_bootstrap_token_becomes_active(node, release):
    # The operator creates it once its own webhook answers through the Service: it may not exist yet.
    token = node.wait_until("bootstrap token Active", lambda: (
        lambda t: t if t and t.get("status", {}).get("phase") == "Active" else None)(
        node.found("servicetokens.tokenwarden.io", "-n", NAMESPACE, "tokenwarden-bootstrap")))
    assert token["status"]["effectiveRoles"] == ["power-user"]
    assert "expiresAt" in token["status"]


def test_webhook_is_reached_through_the_service(node, release):
    configs = node.json("get", "validatingwebhookconfigurations")["items"]
    ours = [c for c in configs if c["metadata"].get("labels", {}).get("app.kubernetes.io/instance") == RELEASE]
    assert ours, "the chart installs no ValidatingWebhookConfiguration"
    for webhook in (w for c in ours for w in c["webhooks"]):
        assert "url" not in webhook["clientConfig"]
        assert webhook["clientConfig"]["service"]["name"] == f"{RELEASE}-webhook"
        assert webhook["failurePolicy"] == "Fail"


def _apply(node, manifest: str):
    return node.kubectl("apply", "-f", "-", input=manifest, check=False)


def test_admission_refuses_an_unknown_role(node, fresh_namespace):
    result = _apply(node, f"""
apiVersion: tokenwarden.io/v1alpha1
kind: ServiceToken
metadata: {{name: greedy, namespace: {fresh_namespace}}}
spec: {{roles: [no-such-role], ttl: 1h}}
""")
    assert result.returncode != 0
    assert "denied the request" in result.stderr and "no-such-role" in result.stderr
    assert node.kubectl("get", "servicetoken", "-n", fresh_namespace, "greedy", check=False).returncode != 0


def test_admission_refuses_an_exceeded_quota(node, fresh_namespace):
    for i in range(3):
        created = _apply(node, f"""
apiVersion: tokenwarden.io/v1alpha1
kind: ServiceAccount
metadata: {{name: acct-{i}, namespace: {fresh_namespace}}}
spec: {{}}
""")
        assert created.returncode == 0, created.stderr
    # The webhook counts accounts from the operator's view: wait until it has seen them.
    node.wait_until("three accounts Ready", lambda: all(
        any(c.get("type") == "Ready" and c.get("reason") == "Ready"
            for c in a.get("status", {}).get("conditions", []))
        for a in node.json("get", "serviceaccounts.tokenwarden.io", "-n", fresh_namespace)["items"]))
    result = _apply(node, f"""
apiVersion: tokenwarden.io/v1alpha1
kind: ServiceAccount
metadata: {{name: acct-3, namespace: {fresh_namespace}}}
spec: {{}}
""")
    assert result.returncode != 0
    assert "quota exceeded" in result.stderr and "maxAccountsPerNamespace" in result.stderr
