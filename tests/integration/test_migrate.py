"""PMM's migration path: existing keys imported with the CLI, one by one or from a file."""
from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import yaml
from kubernetes import client

from .kubehelpers import GROUP, VERSION, get, phase_is, wait_for
from .test_authenticator import _eventually
from .test_import import IMPORTABLE, _kept

BIN = Path(sys.executable).parent
OPAQUE = "0paque-legacy-key-7f3a9c2e41b8d6"
GRAFANA = "glsa_R3JhZmFuYVNlcnZpY2VBY2NvdW50VG9rZW4_a1b2c3d4"


def run(cluster, namespace, *args):
    return subprocess.run([str(BIN / "tokenwarden"), *args, "--kubeconfig", str(cluster.kubeconfig), "-n", namespace],
                          capture_output=True, text=True, timeout=120)


def _legacy_secret(core, namespace, labels=IMPORTABLE):
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="legacy-api-keys", labels=labels),
        data={"opaque": base64.b64encode(OPAQUE.encode()).decode(),
              "grafana": base64.b64encode(GRAFANA.encode()).decode()}))
    return core.read_namespaced_secret("legacy-api-keys", namespace)


def test_import_one_key_from_the_cli(cluster, operator, authenticator, custom, core, namespace):
    _legacy_secret(core, namespace, labels=None)
    # An unlabelled Secret: nothing is created, and the error says how to opt the Secret in.
    refused = run(cluster, namespace, "service-token", "import", "--name", "grafana-agent",
                  "--from-secret", "legacy-api-keys:grafana", "--roles", "writer")
    assert refused.returncode != 0 and "nothing was created" in refused.stderr
    assert f"kubectl label secret legacy-api-keys -n {namespace} tokenwarden.io/importable=true" in refused.stderr
    assert custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens")["items"] == []
    assert GRAFANA not in refused.stdout + refused.stderr

    core.patch_namespaced_secret("legacy-api-keys", namespace, {"metadata": {"labels": IMPORTABLE}})
    before = core.read_namespaced_secret("legacy-api-keys", namespace)
    result = run(cluster, namespace, "service-token", "import", "--name", "grafana-agent",
                 "--from-secret", "legacy-api-keys:grafana", "--roles", "writer")
    assert result.returncode == 0, result.stderr
    token = get(custom, "ServiceToken", namespace, "grafana-agent")
    assert result.stdout == f"Service token imported: {token['status']['tokenId']}\n"
    assert token["status"]["tokenHash"] == _kept(core, GRAFANA)
    assert token["status"]["tokenHash"] != "sha256:" + hashlib.sha256(GRAFANA.encode()).hexdigest()
    for headers in ({"Authorization": f"Bearer {GRAFANA}"}, {"X-API-Key": GRAFANA},
                    {"Authorization": f"ApiKey {GRAFANA}"},
                    {"Authorization": "Basic " + base64.b64encode(f"service_token:{GRAFANA}".encode()).decode()}):
        assert _eventually(lambda: authenticator.get("/verify?permission=write", headers).status_code == 200)
    after = core.read_namespaced_secret("legacy-api-keys", namespace)
    assert after.data == before.data and after.metadata.resource_version == before.metadata.resource_version

    assert run(cluster, namespace, "service-token", "delete", "grafana-agent").returncode == 0
    assert _eventually(lambda: authenticator.get("/verify", {"X-API-Key": GRAFANA}).status_code == 401)


def test_migrate_is_idempotent_and_checks_everything_first(cluster, operator, authenticator, custom, core,
                                                           namespace, tmp_path):
    _legacy_secret(core, namespace)
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="weak-keys", labels=IMPORTABLE),
        data={"short": base64.b64encode(b"tiny").decode()}))
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="unlabelled"),
        data={"token": base64.b64encode(b"unlabelled-key-0123456789").decode()}))
    bad = tmp_path / "bad.yaml"
    bad.write_text("keys:\n"
                   "  - {name: a, roles: [superuser], secret: legacy-api-keys, key: opaque}\n"
                   "  - {name: a, roles: [writer], secret: legacy-api-keys, key: grafana}\n"
                   "  - {name: b, roles: [writer], secret: legacy-api-keys, key: opaque}\n"
                   "  - {name: c, roles: [writer], secret: nowhere}\n"
                   "  - {name: d, roles: [writer], secret: legacy-api-keys, key: missing}\n"
                   "  - {name: e, roles: [writer], secret: weak-keys, key: short}\n"
                   "  - {name: f, roles: [writer], secret: unlabelled}\n")
    refused = run(cluster, namespace, "migrate", "--from-file", str(bad))
    assert refused.returncode != 0
    assert "nothing was created" in refused.stderr
    for problem in ("a: the name appears twice", "superuser", "b: holds the same key as a",
                    f"c: Secret 'nowhere' does not exist in namespace {namespace}",
                    "d: Secret 'legacy-api-keys' has no key 'missing' (its keys: grafana, opaque)",
                    "e: the key in Secret 'weak-keys' has 4 characters; at least 16",
                    f"f: Secret 'unlabelled' in namespace '{namespace}' does not carry the label",
                    f"kubectl label secret unlabelled -n {namespace} tokenwarden.io/importable=true"):
        assert problem in refused.stderr, refused.stderr
    assert OPAQUE not in refused.stderr + refused.stdout and "tiny" not in refused.stderr
    assert "unlabelled-key" not in refused.stderr
    for plural in ("serviceaccounts", "rolebindings", "servicetokens"):
        assert custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"] == []

    keys = tmp_path / "keys.yaml"
    keys.write_text("keys:\n"
                    "  - {name: node-agent, serviceAccount: agents, roles: [writer], secret: legacy-api-keys,"
                    " key: opaque}\n"
                    "  - {name: grafana, serviceAccount: agents, roles: [writer], secret: legacy-api-keys,"
                    " key: grafana}\n")
    dry = run(cluster, namespace, "migrate", "--from-file", str(keys), "--dry-run")
    assert dry.returncode == 0 and "would create" in dry.stdout
    assert custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens")["items"] == []

    first = run(cluster, namespace, "migrate", "--from-file", str(keys))
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created") == 4  # one account, one binding, two tokens
    assert first.stdout.count("| Active, id ") == 2  # migrate waits until the operator has imported them
    assert _eventually(lambda: authenticator.get("/verify?permission=write", {"X-API-Key": OPAQUE}).status_code
                       == 200)
    snapshot = {p: [(i["metadata"]["name"], i["spec"]) for i in
                    custom.list_namespaced_custom_object(GROUP, VERSION, namespace, p)["items"]]
                for p in ("serviceaccounts", "rolebindings", "servicetokens")}
    second = run(cluster, namespace, "migrate", "--from-file", str(keys))
    assert second.returncode == 0 and "created" not in second.stdout.replace("Migrated", "")
    assert second.stdout.count("unchanged") == 4
    as_json = run(cluster, namespace, "migrate", "--from-file", str(keys), "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert [(i["kind"], i["name"], i["action"]) for i in json.loads(as_json.stdout)] == [
        ("ServiceAccount", "agents", "unchanged"), ("RoleBinding", "agents-writer", "unchanged"),
        ("ServiceToken", "node-agent", "unchanged"), ("ServiceToken", "grafana", "unchanged")]
    assert run(cluster, namespace, "migrate", "--from-file", str(keys), "--dry-run", "-o", "name").stdout == (
        "serviceaccount.tokenwarden.io/agents\nrolebinding.tokenwarden.io/agents-writer\n"
        "servicetoken.tokenwarden.io/node-agent\nservicetoken.tokenwarden.io/grafana\n")
    assert snapshot == {p: [(i["metadata"]["name"], i["spec"]) for i in
                            custom.list_namespaced_custom_object(GROUP, VERSION, namespace, p)["items"]]
                        for p in snapshot}

    # A key already imported cannot be migrated again under another name.
    again = tmp_path / "again.yaml"
    again.write_text("keys:\n  - {name: node-agent-2, roles: [writer], secret: legacy-api-keys, key: opaque}\n")
    twice = run(cluster, namespace, "migrate", "--from-file", str(again))
    assert twice.returncode != 0
    assert f"node-agent-2: the key already belongs to ServiceToken {namespace}/node-agent" in twice.stderr


def test_the_examples_work_as_written(cluster, operator, authenticator, custom, core, namespace):
    examples = Path(__file__).resolve().parents[2] / "examples"
    keys = {name: f"{name}-legacy-key-{namespace[-6:]}-0123456789"
            for name in ("grafana-agent", "node-exporter", "dashboards", "ci-pipeline")}
    # As the examples say: the Secret is created, then labelled importable.
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="legacy-api-keys"),
        data={name: base64.b64encode(f"{key}\n".encode()).decode() for name, key in keys.items()}))
    core.patch_namespaced_secret("legacy-api-keys", namespace, {"metadata": {"labels": IMPORTABLE}})

    result = run(cluster, namespace, "migrate", "--from-file", str(examples / "migrate-keys.yaml"))
    assert result.returncode == 0, result.stderr
    for document in yaml.safe_load_all((examples / "import-existing-key.yaml").read_text()):
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", document)

    for name, role in (("grafana-agent", "write"), ("node-exporter", "write"), ("dashboards", "read"),
                       ("ci-pipeline", "write")):
        token = wait_for(custom, "ServiceToken", namespace, name, phase_is("Active"))
        assert token["status"]["imported"] is True
        assert _eventually(lambda: authenticator.get(f"/verify?permission={role}",
                                                     {"X-API-Key": keys[name]}).status_code == 200), name
    assert get(custom, "ServiceAccount", namespace, "agents")


def test_migrate_reports_keys_the_operator_refused(cluster, operator, custom, core, namespace, tmp_path):
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="short", labels=IMPORTABLE),
        data={"token": base64.b64encode(b"ten-chars!").decode()}))
    keys = tmp_path / "keys.yaml"
    keys.write_text("keys:\n  - {name: shorty, roles: [reader], secret: short}\n")
    # The operator's importMinLength is 16: a lower --min-length lets the key past the CLI's own check.
    result = run(cluster, namespace, "migrate", "--from-file", str(keys), "--min-length", "8")
    assert result.returncode == 1
    assert "| Failed" in result.stdout
    assert "1 of 1 key(s) are not in use" in result.stderr and "at least 16 are needed" in result.stderr
    assert "ten-chars!" not in result.stdout + result.stderr
