"""The examples hold together offline: tokenwarden objects pass the API models, and the agent
DaemonSet mounts its token's Secret, runs a valid probe command and asks the chart's Service."""
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
