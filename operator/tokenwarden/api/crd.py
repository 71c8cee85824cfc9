"""Generate CustomResourceDefinitions from the pydantic models."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel

from tokenwarden.api import v1alpha1 as v1

GROUP = "tokenwarden.io"
VERSION = "v1alpha1"
CATEGORY = "tokenwarden"
SYNC_WAVE = {"argocd.argoproj.io/sync-wave": "-10"}

_NAME_RULE = {"rule": "size(self.metadata.name) <= 63",
              "message": "metadata.name must be at most 63 characters: it is a label value on the Secret"}


def _column(name: str, path: str, type_: str = "string", priority: int = 0, description: str = "") -> dict:
    col = {"name": name, "type": type_, "jsonPath": path}
    if priority:
        col["priority"] = priority
    if description:
        col["description"] = description
    return col


_READY = _column("Ready", '.status.conditions[?(@.type=="Ready")].status')
_AGE = _column("Age", ".metadata.creationTimestamp", "date")
_TOKEN_COLUMNS = [
    _column("Phase", ".status.phase"),
    _column("Expires", ".status.expiresAt", "date"),
    _column("Last Used", ".status.lastUsedAt", "date"),
    _AGE,
]


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    short_name: str
    description: str
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: list[dict]
    spec_required: bool = True
    root_rules: list[dict] = field(default_factory=list)

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


KINDS = [
    KindInfo("ServiceAccount", "serviceaccounts", "tsa",
             "A tokenwarden identity that owns tokens and receives roles through RoleBindings "
             "(not Kubernetes' own ServiceAccount).",
             v1.ServiceAccountSpec, v1.ServiceAccountStatus,
             [_column("Disabled", ".spec.disabled", "boolean"), _column("Tokens", ".status.tokenCount", "integer"),
              _READY, _AGE], spec_required=False),
    KindInfo("RoleBinding", "rolebindings", "trb",
             "Grants roles from the catalog to one ServiceAccount, optionally only within one project.",
             v1.RoleBindingSpec, v1.RoleBindingStatus,
             [_column("Account", ".spec.serviceAccountName"), _column("Roles", ".spec.roles"),
              _column("Project", ".spec.project"), _READY, _AGE]),
    KindInfo("ServiceToken", "servicetokens", "tst",
             "One credential, minted into a Secret (key token); the object holds only its hash.",
             v1.ServiceTokenSpec, v1.ServiceTokenStatus,
             [_column("ID", ".status.tokenId"), _column("Account", ".spec.serviceAccountName"),
              _column("Roles", ".status.effectiveRoles"), *_TOKEN_COLUMNS], root_rules=[_NAME_RULE]),
    KindInfo("IngestionAPIKey", "ingestionapikeys", "tik",
             "A key that only lets agents send data (the ingest permission), minted into a Secret.",
             v1.IngestionAPIKeySpec, v1.IngestionAPIKeyStatus,
             [_column("ID", ".status.tokenId"), _column("Description", ".spec.description"), *_TOKEN_COLUMNS],
             spec_required=False, root_rules=[_NAME_RULE]),
]

_KEEP = {"type", "properties", "required", "items", "additionalProperties", "enum", "pattern", "format",
         "minLength", "maxLength", "minItems", "maxItems", "minimum", "maximum", "description", "default"}


def structural_schema(model: type[BaseModel]) -> dict:
    """The model's JSON schema as a Kubernetes structural schema: refs inlined,
    ``Optional`` unwrapped, titles dropped, ``x-kubernetes-*`` extensions kept."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})

    def convert(node: dict) -> dict:
        node = copy.deepcopy(node)
        if "$ref" in node:
            target = convert(defs[node.pop("$ref").split("/")[-1]])
            target.update({k: v for k, v in node.items() if k in ("description",)})
            return target
        if "anyOf" in node:
            options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
            if len(options) != 1:
                raise ValueError(f"cannot express a union in a structural schema: {options}")
            merged = convert(options[0])
            merged.update(convert({k: v for k, v in node.items() if k != "default" or v is not None}))
            return merged
        if "const" in node:
            node["enum"] = [node.pop("const")]
        out: dict = {}
        for key, value in node.items():
            if key == "properties":
                out[key] = {name: convert(sub) for name, sub in value.items()}
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                out[key] = convert(value)
            elif key == "default" and value is None:
                continue
            elif key == "additionalProperties" and isinstance(value, bool):
                continue  # extra="forbid": the server prunes unknown fields instead
            elif key in _KEEP or key.startswith("x-kubernetes-"):
                out[key] = value
        if "enum" in out and "type" not in out:
            out["type"] = "string"
        return out

    schema = convert(raw)
    schema.pop("description", None)
    return schema


def _drop_defaults(schema: dict) -> None:
    """Defaults stay in the models (the operator applies them); the server keeps what the user wrote,
    so a GitOps diff never shows fields the user did not set."""
    schema.pop("default", None)
    for sub in (schema.get("properties") or {}).values():
        _drop_defaults(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            _drop_defaults(schema[key])


def crd(info: KindInfo) -> dict:
    spec = structural_schema(info.spec)
    status = structural_schema(info.status)
    for part in (spec, status):
        _drop_defaults(part)
    spec["description"] = f"Desired state of the {info.kind}."
    status["description"] = f"Observed state of the {info.kind}, written by the operator."
    root = {
        "type": "object",
        "description": info.description,
        "properties": {
            "apiVersion": {"type": "string", "description": "tokenwarden.io/v1alpha1"},
            "kind": {"type": "string", "description": info.kind},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    if info.spec_required:
        root["required"] = ["spec"]
    if info.root_rules:
        root["x-kubernetes-validations"] = info.root_rules
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": info.crd_name, "annotations": dict(SYNC_WAVE),
                     "labels": {"app.kubernetes.io/name": "tokenwarden", "app.kubernetes.io/part-of": "tokenwarden"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": info.kind, "listKind": f"{info.kind}List", "plural": info.plural,
                      "singular": info.kind.lower(), "shortNames": [info.short_name], "categories": [CATEGORY]},
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": info.columns,
                "schema": {"openAPIV3Schema": root},
            }],
        },
    }


_HEADER = "# Generated from operator/tokenwarden/api by `python -m tokenwarden.api`; do not edit.\n"


def _dump(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False, width=100, allow_unicode=True)


def render(root: Path) -> dict[Path, str]:
    """Every generated file under ``root`` (the repository) with its content."""
    files: dict[Path, str] = {}
    names = []
    for info in KINDS:
        body = _dump(crd(info))
        names.append(f"{info.plural}.yaml")
        files[root / "crds" / f"{info.plural}.yaml"] = _HEADER + body
        chart_doc = crd(info)
        chart_doc["metadata"]["annotations"]["helm.sh/resource-policy"] = "__KEEP__"
        chart_body = _dump(chart_doc).replace(
            "    helm.sh/resource-policy: __KEEP__\n",
            "    {{- if .Values.crds.keep }}\n    helm.sh/resource-policy: keep\n    {{- end }}\n")
        files[root / "charts" / "tokenwarden" / "templates" / "crds" / f"{info.plural}.yaml"] = (
            _HEADER + "{{- if .Values.crds.enabled }}\n" + chart_body + "{{- end }}\n")
    files[root / "crds" / "kustomization.yaml"] = _HEADER + _dump(
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": names})
    return files


def write(root: Path) -> list[Path]:
    changed = []
    for path, content in render(root).items():
        if not path.exists() or path.read_text() != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            changed.append(path)
    return changed


def drift(root: Path) -> list[Path]:
    return [p for p, c in render(root).items() if not p.exists() or p.read_text() != c]
