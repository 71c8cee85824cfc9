"""GitOps: no drift (spec is the user's), server-side apply is idempotent, Argo CD health in Lua."""
from __future__ import annotations

import yaml
from kubernetes import client

from ..conftest import REPO
from .kubehelpers import GROUP, VERSION, PLURALS, create, phase_is, ready_reason, wait_for

MANIFESTS = """
apiVersion: tokenwarden.io/v1alpha1
kind: ServiceAccount
metadata: {name: gitops}
spec: {description: managed by Argo CD}
---
apiVersion: tokenwarden.io/v1alpha1
kind: RoleBinding
metadata: {name: gitops-writer}
spec: {serviceAccountName: gitops, roles: [writer]}
---
apiVersion: tokenwarden.io/v1alpha1
kind: ServiceToken
metadata: {name: gitops-token}
spec: {serviceAccountName: gitops, ttl: 30d}
"""


def _apply(custom: client.CustomObjectsApi, namespace: str, doc: dict) -> dict:
    """Server-side apply, as `kubectl apply --server-side` and Argo CD's ServerSideApply do."""
    return custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURALS[doc["kind"]], doc["metadata"]["name"], doc,
        field_manager="argocd-controller", force=True, _content_type="application/apply-patch+yaml")


def test_server_side_apply_twice_changes_nothing_and_spec_stays_the_users(operator, api_client, custom, namespace):
    docs = [d for d in yaml.safe_load_all(MANIFESTS)]
    for doc in docs:
        _apply(custom, namespace, doc)
    wait_for(custom, "ServiceToken", namespace, "gitops-token", phase_is("Active"))
    wait_for(custom, "RoleBinding", namespace, "gitops-writer", lambda o: ready_reason(o) == "Bound")
    wait_for(custom, "ServiceAccount", namespace, "gitops", lambda o: ready_reason(o) == "Ready")

    for doc in docs:
        plural = PLURALS[doc["kind"]]
        before = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, doc["metadata"]["name"])
        after = _apply(custom, namespace, doc)
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], doc["kind"]
        assert after["spec"] == doc["spec"]
        # Only the applier owns spec fields; the operator's managers touch status and metadata only.
        for entry in after["metadata"]["managedFields"]:
            if entry["manager"] != "argocd-controller":
                assert "f:spec" not in (entry.get("fieldsV1") or {}), entry["manager"]


def _lua_health(script: str, obj: dict) -> dict:
    from lupa import LuaRuntime

    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(_to_lua(lua, obj))
    result = lua.execute(script)
    return {"status": result["status"], "message": result["message"]}


def _to_lua(lua, value):
    if isinstance(value, dict):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([_to_lua(lua, v) for v in value])
    return value


TOKEN_HEALTH = (REPO / "docs" / "argocd" / "token-health.lua").read_text()
READY_HEALTH = (REPO / "docs" / "argocd" / "ready-health.lua").read_text()


def test_argocd_health_checks_on_real_objects(operator, custom, core, namespace):
    create(custom, "ServiceAccount", namespace, "app", {})
    create(custom, "RoleBinding", namespace, "app-reader", {"serviceAccountName": "app", "roles": ["reader"]})
    create(custom, "RoleBinding", namespace, "ghost-reader", {"serviceAccountName": "ghost", "roles": ["reader"]})
    create(custom, "ServiceToken", namespace, "healthy", {"serviceAccountName": "app"})
    create(custom, "ServiceToken", namespace, "waiting", {"serviceAccountName": "ghost"})
    core.create_namespaced_secret(namespace, client.V1Secret(metadata=client.V1ObjectMeta(name="taken")))
    create(custom, "ServiceToken", namespace, "broken", {"roles": ["reader"], "secretName": "taken"})
    create(custom, "IngestionAPIKey", namespace, "brief", {"ttl": "2s"})

    cases = [
        (TOKEN_HEALTH, "ServiceToken", "healthy", phase_is("Active"), "Healthy"),
        (TOKEN_HEALTH, "ServiceToken", "waiting", phase_is("Pending"), "Progressing"),
        (TOKEN_HEALTH, "ServiceToken", "broken", phase_is("Failed"), "Degraded"),
        (TOKEN_HEALTH, "IngestionAPIKey", "brief", phase_is("Expired"), "Degraded"),
        (READY_HEALTH, "ServiceAccount", "app", lambda o: ready_reason(o) == "Ready", "Healthy"),
        (READY_HEALTH, "RoleBinding", "app-reader", lambda o: ready_reason(o) == "Bound", "Healthy"),
        (READY_HEALTH, "RoleBinding", "ghost-reader", lambda o: ready_reason(o) == "AccountNotFound", "Degraded"),
    ]
    for script, kind, name, settled, expected in cases:
        obj = wait_for(custom, kind, namespace, name, settled)
        health = _lua_health(script, obj)
        assert health["status"] == expected, (kind, name, health)
        assert health["message"]

    fresh = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ServiceToken", "metadata": {"name": "x", "generation": 1}}
    assert _lua_health(TOKEN_HEALTH, fresh)["status"] == "Progressing"
    assert _lua_health(READY_HEALTH, fresh)["status"] == "Progressing"


def test_second_server_side_apply_of_the_crds_changes_nothing(api_client):
    api = client.ApiextensionsV1Api(api_client)
    for path in sorted((REPO / "crds").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if doc.get("kind") != "CustomResourceDefinition":
            continue

        def apply():
            return api.patch_custom_resource_definition(doc["metadata"]["name"], doc, field_manager="argocd-controller",
                                                        force=True, _content_type="application/apply-patch+yaml")

        first = apply()
        second = apply()
        assert second.metadata.resource_version == first.metadata.resource_version, path.name
