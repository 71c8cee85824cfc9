"""The CRD YAML: committed files match the models, and the schemas are ones the API server takes."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tokenwarden.api import crd
from tokenwarden.api.__main__ import main

REPO = Path(__file__).resolve().parents[2]
CHART_CRDS = REPO / "charts" / "tokenwarden" / "templates" / "crds"
KINDS = {info.kind: info for info in crd.KINDS}


def _schema(kind: str) -> dict:
    return crd.crd(KINDS[kind])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _walk(node: dict, path: str = ""):
    yield path, node
    for name, sub in (node.get("properties") or {}).items():
        yield from _walk(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _walk(node[key], f"{path}[{key}]")


def _node(kind: str, path: str) -> dict:
    node = _schema(kind)
    for name in path.split("."):
        node = node["properties"][name]
    return node


# -- the committed files ------------------------------------------------------

def test_committed_yaml_matches_the_models():
    files = crd.render(REPO)
    stale = [str(path.relative_to(REPO)) for path, text in files.items()
             if not path.is_file() or path.read_text() != text]
    assert not stale, f"generated files differ from the models; run `python -m tokenwarden.api`: {stale}"


def test_no_stray_crd_files():
    # kopf's peering CRD is kopf's own, written by hand (tests/integration/test_chart.py renders it).
    generated = set(crd.render(REPO)) | {CHART_CRDS / "clusterkopfpeerings.yaml"}
    on_disk = set((REPO / "crds").glob("*.yaml")) | set(CHART_CRDS.glob("*.yaml"))
    assert on_disk == generated


def test_rendering_is_deterministic():
    assert crd.render(REPO) == crd.render(REPO)


def test_check_mode_lists_drift_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "charts" / "tokenwarden").mkdir(parents=True)
    assert main(["--check", str(tmp_path)]) == 1
    assert "out of date: crds/servicetokens.yaml" in capsys.readouterr().out
    assert not (tmp_path / "crds").exists()
    assert main([str(tmp_path)]) == 0
    assert main(["--check", str(tmp_path)]) == 0
    (tmp_path / "crds" / "rolebindings.yaml").write_text("# edited by hand\n")
    assert main(["--check", str(tmp_path)]) == 1
    assert capsys.readouterr().out.strip().endswith(
        "out of date: crds/rolebindings.yaml (run: python -m tokenwarden.api)")


def test_plain_files_apply_with_kubectl_and_kustomize():
    for info in crd.KINDS:
        doc = yaml.safe_load((REPO / "crds" / f"{info.plural}.yaml").read_text())
        assert doc == crd.crd(info)
        assert doc["metadata"]["annotations"] == {"argocd.argoproj.io/sync-wave": "-10"}
    kustomization = yaml.safe_load((REPO / "crds" / "kustomization.yaml").read_text())
    assert kustomization["resources"] == [f"{info.plural}.yaml" for info in crd.KINDS]


@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("info", crd.KINDS, ids=lambda i: i.kind)
def test_chart_template_is_gated_and_keeps_on_request(info, keep):
    text = (CHART_CRDS / f"{info.plural}.yaml").read_text()
    body = text.split("\n", 1)[1]  # after the generated-file comment
    assert body.startswith("{{- if .Values.crds.enabled }}\n") and body.endswith("{{- end }}\n")
    # What Helm renders, for the two directives these templates use.
    rendered = body.removeprefix("{{- if .Values.crds.enabled }}\n").removesuffix("{{- end }}\n")
    keep_block = re.compile(r"\n *\{\{- if \.Values\.crds\.keep \}\}(.*?)\n *\{\{- end \}\}", re.S)
    rendered = keep_block.sub(lambda m: m.group(1) if keep else "", rendered)
    assert "{{" not in rendered
    doc = yaml.safe_load(rendered)
    expected = crd.crd(info)
    if keep:
        expected["metadata"]["annotations"]["helm.sh/resource-policy"] = "keep"
    assert doc == expected


# -- names, columns, subresources ---------------------------------------------

@pytest.mark.parametrize("kind, plural, short, columns", [
    ("ServiceAccount", "serviceaccounts", "tsa", ["Disabled", "Tokens", "Workloads", "Ready", "Age", "Last Used"]),
    ("RoleBinding", "rolebindings", "trb", ["Account", "Roles", "Project", "Ready", "Age"]),
    ("ServiceToken", "servicetokens", "tst", ["ID", "Account", "Roles", "Phase", "Expires", "Last Used", "Age",
                                              "Imported", "Secret"]),
    ("IngestionAPIKey", "ingestionapikeys", "tik", ["ID", "Description", "Phase", "Expires", "Last Used", "Age"]),
])
def test_names_and_printer_columns(kind, plural, short, columns):
    doc = crd.crd(KINDS[kind])
    assert doc["metadata"]["name"] == f"{plural}.tokenwarden.io"
    spec = doc["spec"]
    assert spec["group"] == "tokenwarden.io" and spec["scope"] == "Namespaced"
    assert spec["names"] == {"kind": kind, "listKind": f"{kind}List", "plural": plural,
                             "singular": kind.lower(), "shortNames": [short], "categories": ["tokenwarden"]}
    [version] = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == columns
    # Columns past Age are for kubectl get -o wide only.
    assert [c["name"] for c in version["additionalPrinterColumns"] if c.get("priority")] == columns[
        columns.index("Age") + 1:]
    schema = version["schema"]["openAPIV3Schema"]
    for column in version["additionalPrinterColumns"]:
        top, *rest = column["jsonPath"].lstrip(".").split(".")
        if top in ("spec", "status"):  # every column points at a field the schema has
            field = re.sub(r"\[.*$", "", rest[0])
            assert field in schema["properties"][top]["properties"], column


def test_ready_column_reads_the_ready_condition():
    version = crd.crd(KINDS["RoleBinding"])["spec"]["versions"][0]
    ready = next(c for c in version["additionalPrinterColumns"] if c["name"] == "Ready")
    assert ready["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'


# -- structural schema --------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_structural(kind):
    allowed = {"type", "format", "description", "enum", "pattern", "minLength", "maxLength", "minimum",
               "maximum", "minItems", "maxItems", "required", "properties", "additionalProperties", "items"}
    for path, node in _walk(_schema(kind)):
        assert node.get("type") or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        unknown = {k for k in node if not k.startswith("x-kubernetes-")} - allowed
        assert not unknown, f"{path} has {unknown}"  # no $ref, anyOf, title, default, const …
        if node.get("type") == "object" and path != ".metadata":
            # an object with nothing declared would be pruned to {} by the API server
            assert ("properties" in node or "additionalProperties" in node
                    or node.get("x-kubernetes-preserve-unknown-fields")), path
        if node.get("type") == "array":
            assert "items" in node, path
        for name in node.get("required", []):
            assert name in node["properties"], f"{path} requires unknown {name}"


@pytest.mark.parametrize("kind", KINDS)
def test_every_field_is_documented_for_kubectl_explain(kind):
    schema = _schema(kind)
    assert schema["description"]
    for path, node in _walk(schema):
        if path and path != ".metadata" and not path.endswith("]"):
            assert node.get("description"), f"{path} has no description"
            assert "\n" not in node["description"]


@pytest.mark.parametrize("kind", KINDS)
def test_root_is_a_standard_object(kind):
    schema = _schema(kind)
    assert schema["type"] == "object"
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert schema["properties"]["apiVersion"]["type"] == "string"
    assert schema["properties"]["kind"]["type"] == "string"
    assert schema.get("required") == (["spec"] if kind in ("RoleBinding", "ServiceToken") else None)


def test_preserve_unknown_fields_only_for_the_frameworks_bookkeeping():
    for kind in KINDS:
        preserved = [path for path, node in _walk(_schema(kind))
                     if node.get("x-kubernetes-preserve-unknown-fields")]
        assert preserved == ([] if kind == "TokenUsage" else [".status.kopf"]), kind


# -- what the API server checks by itself ---------------------------------------

def _rules(node: dict) -> dict[str, str]:
    return {v["message"]: v["rule"] for v in node.get("x-kubernetes-validations", [])}


@pytest.mark.parametrize("kind", ["ServiceToken", "IngestionAPIKey"])
def test_credential_rules(kind):
    spec = _node(kind, "spec")
    rules = _rules(spec)
    assert rules["set at most one of spec.expiration and spec.ttl"] == "!(has(self.expiration) && has(self.ttl))"
    assert ("has(self.secretName) == has(oldSelf.secretName) && "
            "(!has(self.secretName) || self.secretName == oldSelf.secretName)") in rules.values()
    assert spec["properties"]["ttl"]["pattern"] == r"^([0-9]+[smhdw])+$"
    assert spec["properties"]["expiration"]["pattern"].startswith(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T")
    assert spec["properties"]["secretName"]["maxLength"] == 253
    kinds = spec["properties"]["rotation"]["properties"]["restartTargets"]["items"]["properties"]["kind"]
    assert kinds["enum"] == ["Deployment", "DaemonSet", "StatefulSet"]
    status = _node(kind, "status")["properties"]
    assert status["phase"]["enum"] == ["Pending", "Active", "Expired", "Revoked", "Failed"]
    assert status["tokenHash"]["pattern"] == "^(sha256|hmac-sha256):[0-9a-f]{64}$"
    assert status["expiresAt"]["format"] == "date-time"


def test_service_token_rules():
    spec = _node("ServiceToken", "spec")
    rules = _rules(spec)
    assert rules["a token without spec.serviceAccountName needs spec.roles"] == (
        "has(self.serviceAccountName) || (has(self.roles) && size(self.roles) > 0)")
    assert ("has(self.serviceAccountName) == has(oldSelf.serviceAccountName) && "
            "(!has(self.serviceAccountName) || self.serviceAccountName == oldSelf.serviceAccountName)"
            ) in rules.values()
    # CEL reserves the word: spec.import is written self.__import__ (a bare self.import fails to compile).
    assert "import" in spec["properties"] and not any("self.import" in r for r in rules.values())
    assert "!has(self.__import__) || !has(self.rotation)" in rules.values()
    assert rules["spec.import cannot be added or removed: a token is either minted or imported; "
                 "delete and re-create the object"] == "has(self.__import__) == has(oldSelf.__import__)"
    assert spec["properties"]["roles"]["x-kubernetes-list-type"] == "set"
    assert spec["properties"]["roles"]["items"]["pattern"] == "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    assert spec["properties"]["audiences"]["x-kubernetes-list-type"] == "set"
    status = _node("ServiceToken", "status")["properties"]
    assert {"effectiveRoles", "imported"} <= set(status)
    assert not {"effectiveRoles", "imported", "roles"} & set(_node("IngestionAPIKey", "status")["properties"])
    assert not {"roles", "serviceAccountName", "import", "audiences"} & set(
        _node("IngestionAPIKey", "spec")["properties"])


def test_role_binding_rules():
    spec = _node("RoleBinding", "spec")
    assert spec["required"] == ["serviceAccountName", "roles"]
    account = spec["properties"]["serviceAccountName"]
    message = "serviceAccountName is immutable; delete and re-create the object"
    assert _rules(account) == {message: "self == oldSelf"}
    roles = spec["properties"]["roles"]
    assert roles["minItems"] == 1 and roles["x-kubernetes-list-type"] == "set"
    assert roles["items"]["pattern"] == "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    assert roles["items"]["maxLength"] == 63


@pytest.mark.parametrize("kind", ["RoleBinding", "IngestionAPIKey"])
def test_projects_are_dns_labels_checked_by_the_api_server(kind):
    project = _node(kind, "spec.project")
    assert project["pattern"] == "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" and project["maxLength"] == 63


def test_token_usage_holds_only_times():
    status = _node("TokenUsage", "status")["properties"]
    assert set(status) == {"serviceTokens", "ingestionAPIKeys", "serviceAccounts"}
    assert status["serviceTokens"]["additionalProperties"]["format"] == "date-time"


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "TokenUsage"])
def test_conditions_are_a_map_list_keyed_by_type(kind):
    conditions = _node(kind, "status.conditions")
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["properties"]) == {"type", "status", "reason", "message", "lastTransitionTime",
                                       "observedGeneration"}
    assert "type" in item["required"]  # a map key must be required
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]


def test_defaults_live_in_the_models_not_the_schema():
    assert "default" not in _node("ServiceAccount", "spec.disabled")
    assert "Default: false" in _node("ServiceAccount", "spec.disabled")["description"]
    key = _node("ServiceToken", "spec.import")["properties"]["secretRef"]["properties"]["key"]
    assert "default" not in key and "Default: token" in key["description"]
