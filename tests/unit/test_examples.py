"""The examples hold together offline: tokenwarden objects pass the API models, the agent
DaemonSet mounts its token's Secret, runs a valid probe command and asks the chart's Service,
and the workload-identity agents mount a projected service-account token and store none."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tokenwarden.api import IngestionAPIKey, RoleBinding, ServiceAccount, ServiceToken
from tokenwarden.cli import cli
from tokenwarden.config import Settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CHART = Path(__file__).resolve().parents[2] / "charts" / "tokenwarden"
MODELS = {m.model_fields["kind"].default: m for m in (ServiceAccount, RoleBinding, ServiceToken, IngestionAPIKey)}


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_tokenwarden_objects_in_examples_are_valid(path):
    for document in documents(path):
        if document.get("apiVersion") == "tokenwarden.io/v1alpha1":
            model = MODELS[document["kind"]].model_validate(document)
            assert set(getattr(model.spec, "roles", None) or ()) <= set(Settings().roles)


def test_the_agent_daemonset_mounts_its_token_and_asks_the_charts_authenticator():
    objects = {(d["kind"], d["metadata"]["name"]): d for d in documents(EXAMPLES / "agent-daemonset.yaml")}
    assert set(objects) == {("Namespace", "observability"), ("ServiceAccount", "profiler"),
                            ("RoleBinding", "profiler-writer"), ("ServiceToken", "profiling-agent"),
                            ("DaemonSet", "profiling-agent")}
    assert {d["metadata"].get("namespace") for k, d in objects.items() if k[0] != "Namespace"} == {"observability"}
    token = objects["ServiceToken", "profiling-agent"]["spec"]
    assert token["rotation"]["restartTargets"] == [{"kind": "DaemonSet", "name": "profiling-agent"}]
    assert objects["RoleBinding", "profiler-writer"]["spec"]["roles"] == ["profile-writer"]

    pod = objects["DaemonSet", "profiling-agent"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mount, ca_mount = container["volumeMounts"]
    volume, ca_volume = pod["volumes"]
    assert "subPath" not in mount and mount["readOnly"] is True  # a subPath mount never sees a rotation
    assert volume["name"] == mount["name"] and volume["secret"]["secretName"] == token["secretName"]
    assert pod["securityContext"]["runAsNonRoot"] is True and container["securityContext"]["readOnlyRootFilesystem"]

    # The arguments are a valid probe command line (the image's entrypoint is `tokenwarden`)...
    assert container["args"][:2] == ["token", "probe"]
    params = cli.commands["token"].commands["probe"].make_context("probe", container["args"][2:]).params
    assert params["token_file"] == Path(mount["mountPath"]) / "token"
    # ...asking the Service the chart makes for a release named tokenwarden in namespace tokenwarden,
    # over HTTPS on the default port, trusting the CA the chart publishes (a copy in the agent's namespace).
    values = yaml.safe_load((CHART / "values.yaml").read_text())["authenticator"]
    assert values["port"] == 443 and values["tls"]["enabled"] is True
    assert "name: {{ $name }}-authenticator" in (CHART / "templates" / "authenticator.yaml").read_text()
    assert "name: {{ $name }}-authenticator-ca" in (CHART / "templates" / "authenticator-tls.yaml").read_text()
    assert params["url"] == "https://tokenwarden-authenticator.tokenwarden.svc/verify"
    assert params["ca_file"] == str(Path(ca_mount["mountPath"]) / "ca.crt") and ca_mount["readOnly"] is True
    assert ca_volume == {"name": ca_mount["name"], "configMap": {"name": "tokenwarden-authenticator-ca"}}
    assert params["permission"] in Settings().roles["profile-writer"].permissions


@pytest.mark.parametrize("name", ["import-existing-key.yaml", "migrate-keys.yaml"])
def test_the_import_examples_label_their_secret_importable(name):
    text = (EXAMPLES / name).read_text()
    assert "kubectl label secret legacy-api-keys -n demo tokenwarden.io/importable=true" in text
    assert text.index("kubectl label secret") < text.index("tokenwarden migrate" if "migrate" in name
                                                            else "kubectl apply")


WORKLOAD_EXAMPLES = {"agent-workload-identity.yaml": ("profiling", "profiling-agent", "profiler"),
                     "otel-collector-workload-identity.yaml": ("telemetry", "otel-collector", "otel-collector")}


@pytest.mark.parametrize("name", sorted(WORKLOAD_EXAMPLES))
def test_workload_identity_examples_mount_a_projected_token_and_store_none(name):
    """The pods run as a Kubernetes ServiceAccount that a tokenwarden ServiceAccount lists, and
    send a projected token for the authenticator's audience: no Secret, no minted credential."""
    namespace, k8s_account, account = WORKLOAD_EXAMPLES[name]
    objects = {(d["kind"], d["apiVersion"], d["metadata"]["name"]): d for d in documents(EXAMPLES / name)}
    kinds = {kind for kind, _, _ in objects}
    assert not kinds & {"Secret", "ServiceToken", "IngestionAPIKey"}
    assert {d["metadata"].get("namespace") for (kind, _, _), d in objects.items() if kind != "Namespace"} == \
        {namespace}
    assert ("ServiceAccount", "v1", k8s_account) in objects
    spec = ServiceAccount.model_validate(objects["ServiceAccount", "tokenwarden.io/v1alpha1", account]).spec
    assert [w.service_account_name for w in spec.workload_identities] == [k8s_account]
    (binding,) = [d for (kind, _, _), d in objects.items() if kind == "RoleBinding"]
    assert binding["spec"]["serviceAccountName"] == account

    (daemonset,) = [d for (kind, _, _), d in objects.items() if kind == "DaemonSet"]
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == k8s_account and pod["automountServiceAccountToken"] is False
    assert not [v for v in pod["volumes"] if "secret" in v]
    (volume,) = [v for v in pod["volumes"] if "projected" in v]
    (source,) = volume["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] in Settings().audiences
    assert source["serviceAccountToken"]["expirationSeconds"] == 3600
    (container,) = pod["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert "subPath" not in mount and mount["readOnly"] is True  # a subPath mount never sees a renewal
    token_file = Path(mount["mountPath"]) / source["serviceAccountToken"]["path"]
    assert pod["securityContext"]["runAsNonRoot"] is True and container["securityContext"]["readOnlyRootFilesystem"]

    if name.startswith("agent"):
        # The reference agent reads the projected file and asks the chart's Service, as the minted example does.
        params = cli.commands["token"].commands["probe"].make_context("probe", container["args"][2:]).params
        assert container["args"][:2] == ["token", "probe"] and params["token_file"] == token_file
        assert params["url"] == "https://tokenwarden-authenticator.tokenwarden.svc/verify"
        assert params["permission"] in Settings().roles["profile-writer"].permissions
        assert binding["spec"]["roles"] == ["profile-writer"]
    else:
        config = yaml.safe_load(objects["ConfigMap", "v1", "otel-collector"]["data"]["config.yaml"])
        assert config["extensions"]["bearertokenauth"] == {"filename": str(token_file)}
        assert "bearertokenauth" in config["service"]["extensions"]
        exporters = {e for pipeline in config["service"]["pipelines"].values() for e in pipeline["exporters"]}
        assert exporters and all(config["exporters"][e]["auth"]["authenticator"] == "bearertokenauth"
                                 for e in exporters)
        config_mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
        assert container["args"] == [f"--config={config_mount['mountPath']}/config.yaml"]
        assert "ingest" in Settings().roles[binding["spec"]["roles"][0]].permissions
