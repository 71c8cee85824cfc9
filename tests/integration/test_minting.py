"""Minting: kubectl-apply-style objects become a Secret holding a token whose hash is in status."""
from __future__ import annotations

import base64
import hashlib

import pytest
from kubernetes import client

from tokenwarden.tokens import parse_token

from .kubehelpers import create, get, phase_is, ready_reason, wait_for, wait_for_event


def _secret_token(core: client.CoreV1Api, namespace: str, name: str) -> str:
    secret = core.read_namespaced_secret(name, namespace)
    return base64.b64decode(secret.data["token"]).decode()


def _account_with_binding(custom, namespace, account="agents", roles=("writer",), project=None):
    create(custom, "ServiceAccount", namespace, account, {"description": "profiling agents"})
    spec = {"serviceAccountName": account, "roles": list(roles)}
    if project:
        spec["project"] = project
    create(custom, "RoleBinding", namespace, f"{account}-{'-'.join(roles)}", spec)


def test_minted_token_lives_only_in_its_secret(operator, custom, core, namespace):
    _account_with_binding(custom, namespace)
    create(custom, "ServiceToken", namespace, "agent-token",
           {"serviceAccountName": "agents", "description": "for the DaemonSet", "ttl": "24h"})
    token_obj = wait_for(custom, "ServiceToken", namespace, "agent-token", phase_is("Active"))
    status = token_obj["status"]

    token = _secret_token(core, namespace, "agent-token")
    parse_token(token, prefixes=("twst",))
    assert status["tokenHash"] == "sha256:" + hashlib.sha256(token.encode()).hexdigest()
    assert status["effectiveRoles"] == ["writer"]
    assert status["secretName"] == "agent-token"
    assert status["tokenId"].isdigit()
    assert status["expiresAt"] > status["issuedAt"]
    assert ready_reason(token_obj) == "Minted"

    secret = core.read_namespaced_secret("agent-token", namespace)
    assert secret.type == "Opaque"
    assert secret.metadata.labels["app.kubernetes.io/managed-by"] == "tokenwarden"
    assert secret.metadata.labels["tokenwarden.io/token"] == "agent-token"
    owner = secret.metadata.owner_references[0]
    assert (owner.kind, owner.uid, owner.controller) == ("ServiceToken", token_obj["metadata"]["uid"], True)

    # Nowhere else: not in the custom resource, not in events, not in the DEBUG log.
    assert token not in str(get(custom, "ServiceToken", namespace, "agent-token"))
    minted = wait_for_event(core, namespace, "agent-token", "Minted")
    assert minted.message.startswith(f"token {status['tokenId']} minted")
    events = core.list_namespaced_event(namespace)
    assert token not in str(events.to_dict())
    assert token not in operator.log()
    assert base64.b64encode(token.encode()).decode() not in operator.log()


def test_ingestion_key_is_minted_with_its_own_prefix(operator, custom, core, namespace):
    create(custom, "IngestionAPIKey", namespace, "otel", {"description": "otel collector"})
    key_obj = wait_for(custom, "IngestionAPIKey", namespace, "otel", phase_is("Active"))
    key = _secret_token(core, namespace, "otel")
    parse_token(key, prefixes=("twik",))
    assert key_obj["status"]["tokenHash"] == "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    assert "expiresAt" not in key_obj["status"] or key_obj["status"]["expiresAt"] is None


def test_standalone_token_with_roles_and_project_scoped_binding(operator, custom, namespace):
    create(custom, "ServiceToken", namespace, "ci", {"roles": ["power-user"], "expiration": "2099-12-31"})
    ci = wait_for(custom, "ServiceToken", namespace, "ci", phase_is("Active"))
    assert ci["status"]["effectiveRoles"] == ["power-user"]
    assert ci["status"]["expiresAt"] == "2100-01-01T00:00:00Z"

    _account_with_binding(custom, namespace, "profiler", ("profile-writer",), project="shop")
    create(custom, "ServiceToken", namespace, "profiler-token", {"serviceAccountName": "profiler"})
    scoped = wait_for(custom, "ServiceToken", namespace, "profiler-token", phase_is("Active"))
    assert scoped["status"]["effectiveRoles"] == ["profile-writer@shop"]


def test_binding_changes_update_effective_roles(operator, custom, namespace):
    _account_with_binding(custom, namespace, "svc", ("reader",))
    create(custom, "ServiceToken", namespace, "svc-token", {"serviceAccountName": "svc"})
    wait_for(custom, "ServiceToken", namespace, "svc-token", phase_is("Active"))
    create(custom, "RoleBinding", namespace, "svc-writer", {"serviceAccountName": "svc", "roles": ["writer"]})
    wait_for(custom, "ServiceToken", namespace, "svc-token",
             lambda o: o["status"].get("effectiveRoles") == ["reader", "writer"])
    custom.delete_namespaced_custom_object("tokenwarden.io", "v1alpha1", namespace, "rolebindings", "svc-reader")
    wait_for(custom, "ServiceToken", namespace, "svc-token",
             lambda o: o["status"].get("effectiveRoles") == ["writer"])


def test_token_waits_for_its_account_then_mints(operator, custom, namespace):
    create(custom, "ServiceToken", namespace, "early", {"serviceAccountName": "late"})
    pending = wait_for(custom, "ServiceToken", namespace, "early", phase_is("Pending"))
    assert ready_reason(pending) == "AccountNotFound"
    _account_with_binding(custom, namespace, "late", ("reader",))
    wait_for(custom, "ServiceToken", namespace, "early", phase_is("Active"))


def test_deleting_a_token_deletes_its_secret(operator, custom, core, namespace):
    create(custom, "ServiceToken", namespace, "short-lived", {"roles": ["reader"]})
    wait_for(custom, "ServiceToken", namespace, "short-lived", phase_is("Active"))
    custom.delete_namespaced_custom_object("tokenwarden.io", "v1alpha1", namespace, "servicetokens", "short-lived")
    _wait_gone(core, namespace, "short-lived")


def _wait_gone(core, namespace, name, timeout=30):
    from kubernetes import watch

    selector = f"metadata.name={name}"
    listing = core.list_namespaced_secret(namespace, field_selector=selector)
    if not listing.items:
        return
    for event in watch.Watch().stream(core.list_namespaced_secret, namespace, field_selector=selector,
                                      resource_version=listing.metadata.resource_version,
                                      timeout_seconds=timeout):
        if event["type"] == "DELETED":
            return
    pytest.fail(f"Secret {namespace}/{name} still exists after {timeout}s")


def test_deleting_an_account_revokes_its_tokens(operator, custom, core, namespace):
    _account_with_binding(custom, namespace, "gone", ("reader",))
    create(custom, "ServiceToken", namespace, "gone-token", {"serviceAccountName": "gone"})
    wait_for(custom, "ServiceToken", namespace, "gone-token", phase_is("Active"))
    custom.delete_namespaced_custom_object("tokenwarden.io", "v1alpha1", namespace, "serviceaccounts", "gone")
    revoked = wait_for(custom, "ServiceToken", namespace, "gone-token", phase_is("Revoked"))
    assert ready_reason(revoked) == "AccountDeleted"
    _wait_gone(core, namespace, "gone-token")


def test_disabled_account_marks_its_tokens(operator, custom, namespace):
    _account_with_binding(custom, namespace, "paused", ("reader",))
    create(custom, "ServiceToken", namespace, "paused-token", {"serviceAccountName": "paused"})
    wait_for(custom, "ServiceToken", namespace, "paused-token", phase_is("Active"))
    custom.patch_namespaced_custom_object("tokenwarden.io", "v1alpha1", namespace, "serviceaccounts",
                                          "paused", {"spec": {"disabled": True}})
    wait_for(custom, "ServiceToken", namespace, "paused-token",
             lambda o: ready_reason(o) == "AccountDisabled")
    custom.patch_namespaced_custom_object("tokenwarden.io", "v1alpha1", namespace, "serviceaccounts",
                                          "paused", {"spec": {"disabled": False}})
    wait_for(custom, "ServiceToken", namespace, "paused-token", lambda o: ready_reason(o) == "Minted")


def test_operator_metrics_count_mints_without_token_material(operator, custom, core, namespace):
    create(custom, "ServiceToken", namespace, "counted", {"roles": ["reader"]})
    wait_for(custom, "ServiceToken", namespace, "counted", phase_is("Active"))
    token = _secret_token(core, namespace, "counted")
    metrics = operator.metrics()
    assert 'tokenwarden_tokens_minted_total{kind="ServiceToken"}' in metrics
    assert 'tokenwarden_mint_duration_seconds_count{kind="ServiceToken"}' in metrics
    assert 'tokenwarden_mint_seconds_count{kind="ServiceToken"}' in metrics  # deprecated, kept one release
    assert 'tokenwarden_tokens{kind="ServiceToken",phase="Active"}' in metrics
    assert token not in metrics and "sha256" not in metrics
