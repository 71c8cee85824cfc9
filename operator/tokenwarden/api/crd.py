"""Generate the CustomResourceDefinitions from the pydantic models.

``render(root)`` returns every generated file; ``write`` and ``drift`` compare it with
what is on disk, so the command and the drift test share one code path.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel

from tokenwarden.api import v1alpha1 as v1

GROUP = v1.GROUP
VERSION = v1.VERSION
CATEGORY = "tokenwarden"
SYNC_WAVE = {"argocd.argoproj.io/sync-wave": "-10"}
LABELS = {"app.kubernetes.io/name": "tokenwarden", "app.kubernetes.io/part-of": "tokenwarden"}


def _column(name: str, path: str, type_: str = "string", *, wide: bool = False) -> dict:
    """A printer column; ``wide`` ones show with ``kubectl get -o wide`` only."""
    column = {"name": name, "type": type_, "jsonPath": path}
    return {**column, "priority": 1} if wide else column


_READY = _column("Ready", '.status.conditions[?(@.type=="Ready")].status')
_AGE = _column("Age", ".metadata.creationTimestamp", "date")
_CREDENTIAL_COLUMNS = [
    _column("Phase", ".status.phase"),
    # A date column prints the age of a time and "<invalid>" for one in the future,
    # which expiresAt usually is; the timestamp itself reads better.
    _column("Expires", ".status.expiresAt"),
    _column("Last Used", ".status.lastUsedAt", "date"),
    _AGE,
]


@dataclass(frozen=True)
class KindInfo:
    """What the CRD says beyond the model: names and printer columns."""

    model: type[BaseModel]
    plural: str
    short_name: str
    columns: list[dict]

    @property
    def kind(self) -> str:
        return self.model.model_fields["kind"].default

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


KINDS = [
    KindInfo(v1.ServiceAccount, "serviceaccounts", "tsa", [
        _column("Disabled", ".spec.disabled", "boolean"),
        _column("Tokens", ".status.tokenCount", "integer"),
        _column("Workloads", ".status.workloadIdentities", "integer"),
        _READY, _AGE,
        _column("Last Used", ".status.lastUsedAt", "date", wide=True)]),
    KindInfo(v1.RoleBinding, "rolebindings", "trb", [
        _column("Account", ".spec.serviceAccountName"),
        _column("Roles", ".spec.roles"),
        _column("Project", ".spec.project"),
        _READY, _AGE]),
    KindInfo(v1.ServiceToken, "servicetokens", "tst", [
        _column("ID", ".status.tokenId"),
        _column("Account", ".spec.serviceAccountName"),
        _column("Roles", ".status.effectiveRoles"),
        *_CREDENTIAL_COLUMNS,
        _column("Imported", ".status.imported", "boolean", wide=True),
        _column("Secret", ".status.secretName", wide=True)]),
    KindInfo(v1.IngestionAPIKey, "ingestionapikeys", "tik", [
        _column("ID", ".status.tokenId"),
        _column("Description", ".spec.description"),
        *_CREDENTIAL_COLUMNS]),
    KindInfo(v1.TokenUsage, "tokenusages", "tus", [_AGE]),
]

# JSON-schema keywords a structural schema may carry, in the order the YAML shows them;
# anything else pydantic emits (title, $defs, default, additionalProperties: false) is dropped.
_ORDER = ["type", "format", "description", "enum", "pattern", "minLength", "maxLength", "minimum", "maximum",
          "minItems", "maxItems", "required", "properties", "additionalProperties", "items"]


def structural_schema(model: type[BaseModel]) -> dict:
    """The model's JSON schema as a Kubernetes structural schema.

    ``$ref`` is inlined, ``X | None`` becomes an optional ``X``, titles and defaults are
    dropped (the models apply defaults, and the server then stores only what the user
    wrote, so a GitOps diff never shows fields nobody set), ``x-kubernetes-*`` is kept.
    """
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})

    def convert(node: dict) -> dict:
        if {"allOf", "oneOf", "not"} & set(node):
            raise ValueError(f"no structural schema for {node}")
        if "$ref" in node:
            target = defs[node["$ref"].rsplit("/", 1)[-1]]
            return convert({**target, **{k: v for k, v in node.items() if k != "$ref"}})
        if "anyOf" in node:
            options = [o for o in node["anyOf"] if o.get("type") != "null"]
            if len(options) != 1:
                raise ValueError(f"a structural schema cannot express the union {options}")
            return convert({**options[0], **{k: v for k, v in node.items() if k != "anyOf"}})
        if "const" in node:
            return convert({**{k: v for k, v in node.items() if k != "const"}, "enum": [node["const"]]})
        out: dict = {}
        for key in _ORDER:
            if key not in node or (key == "additionalProperties" and not isinstance(node[key], dict)):
                continue
            value = node[key]
            if key == "properties":
                value = {name: convert(sub) for name, sub in value.items()}
            elif key in ("items", "additionalProperties"):
                value = convert(value)
            elif key == "description":
                value = " ".join(value.split())
            out[key] = value
        out.update(sorted((k, v) for k, v in node.items() if k.startswith("x-kubernetes-")))
        return out

    return convert(raw)


def openapi_schema(info: KindInfo) -> dict:
    """The ``openAPIV3Schema`` of one kind: the model's schema with the standard object header."""
    schema = structural_schema(info.model)
    schema["properties"].update({
        "apiVersion": {"type": "string", "description": "APIVersion of the object: tokenwarden.io/v1alpha1."},
        "kind": {"type": "string", "description": f"Kind of the object: {info.kind}."},
        # The API server validates metadata itself; a CRD may only say it is an object.
        "metadata": {"type": "object"},
    })
    return schema


def crd(info: KindInfo) -> dict:
    """The CustomResourceDefinition of one kind, as ``kubectl apply`` takes it."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": info.crd_name, "annotations": dict(SYNC_WAVE), "labels": dict(LABELS)},
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
                "schema": {"openAPIV3Schema": openapi_schema(info)},
            }],
        },
    }


_HEADER = "# Generated from operator/tokenwarden/api by `python -m tokenwarden.api`; do not edit.\n"
_KEEP_MARK = "__TOKENWARDEN_KEEP__"


def _dump(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False, width=110, allow_unicode=True)


def _chart_template(info: KindInfo) -> str:
    """The CRD as a chart template: behind ``crds.enabled``, kept on uninstall with ``crds.keep``."""
    doc = crd(info)
    doc["metadata"]["annotations"]["helm.sh/resource-policy"] = _KEEP_MARK
    text = _dump(doc)
    line = f"    helm.sh/resource-policy: {_KEEP_MARK}\n"
    assert text.count(line) == 1, "the keep annotation moved; update _chart_template"
    text = text.replace(line, "    {{- if .Values.crds.keep }}\n"
                              "    helm.sh/resource-policy: keep\n"
                              "    {{- end }}\n")
    return "{{- if .Values.crds.enabled }}\n" + text + "{{- end }}\n"


def render(root: Path) -> dict[Path, str]:
    """Every generated file under ``root`` (the repository) with its content."""
    files: dict[Path, str] = {}
    for info in KINDS:
        files[root / "crds" / f"{info.plural}.yaml"] = _HEADER + _dump(crd(info))
        files[root / "charts" / "tokenwarden" / "templates" / "crds" / f"{info.plural}.yaml"] = (
            _HEADER + _chart_template(info))
    files[root / "crds" / "kustomization.yaml"] = _HEADER + _dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [f"{info.plural}.yaml" for info in KINDS]})
    return files


def drift(root: Path) -> list[Path]:
    """Generated files under ``root`` that are missing or differ from what the models give."""
    return [path for path, text in render(root).items() if not path.is_file() or path.read_text() != text]


def write(root: Path) -> list[Path]:
    """Write the generated files that differ; return them."""
    changed = drift(root)
    files = render(root)
    for path in changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path])
    return changed
