"""Bad input is refused at the door or marked with a reason; the operator keeps running."""
from __future__ import annotations

import base64

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tokenwarden.handlers._unsettled import UNSETTLED_AFTER, UNSETTLED_SWEEP

from .kubehelpers import create, phase_is, ready_reason, wait_for, wait_for_event


def _refused(call, *words: str) -> str:
    with pytest.raises(ApiException) as refused:
        call()
    assert refused.value.status in (400, 403, 422), refused.value.body
    for word in words:
        assert word in refused.value.body, refused.value.body
    return refused.value.body


def test_unknown_role_is_refused(operator, custom, namespace):
    _refused(lambda: create(custom, "ServiceToken", namespace, "bad-role", {"roles": ["superuser"]}),
             "superuser", "role catalog")
    create(custom, "ServiceAccount", namespace, "acct", {})
    _refused(lambda: create(custom, "RoleBinding", namespace, "bad-binding",
                            {"serviceAccountName": "acct", "roles": ["superuser"]}), "superuser")


def test_cross_namespace_account_is_refused(operator, custom, namespace):
    _refused(lambda: create(custom, "ServiceToken", namespace, "cross",
                            {"serviceAccountName": "other-namespace/agents"}), "serviceAccountName")


def test_roles_beyond_the_accounts_grants_wait_with_a_reason(operator, custom, namespace):
    create(custom, "ServiceAccount", namespace, "limited", {})
    create(custom, "RoleBinding", namespace, "limited-reader", {"serviceAccountName": "limited", "roles": ["reader"]})
    create(custom, "ServiceToken", namespace, "greedy", {"serviceAccountName": "limited", "roles": ["admin"]})
    greedy = wait_for(custom, "ServiceToken", namespace, "greedy", lambda o: ready_reason(o) == "RolesNotGranted")
    assert greedy["status"]["phase"] == "Pending"
    assert "admin" in greedy["status"]["conditions"][0]["message"]
    assert "tokenHash" not in greedy["status"]


def test_malformed_and_past_expiration_are_refused(operator, custom, namespace):
    _refused(lambda: create(custom, "ServiceToken", namespace, "malformed",
                            {"roles": ["reader"], "expiration": "31/12/2030"}), "expiration")
    _refused(lambda: create(custom, "ServiceToken", namespace, "past",
                            {"roles": ["reader"], "expiration": "2020-01-01"}), "in the past")


def test_secret_not_owned_is_never_overwritten(operator, custom, core, namespace):
    original = {"token": base64.b64encode(b"someone else's").decode()}
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="taken"), data=original))
    create(custom, "ServiceToken", namespace, "wants-taken", {"roles": ["reader"], "secretName": "taken"})
    failed = wait_for(custom, "ServiceToken", namespace, "wants-taken", phase_is("Failed"))
    assert ready_reason(failed) == "SecretConflict"
    assert "never overwrites" in failed["status"]["conditions"][0]["message"]
    secret = core.read_namespaced_secret("taken", namespace)
    assert secret.data == original and not secret.metadata.owner_references

    # The operator keeps going: the next token in the same namespace is minted.
    create(custom, "ServiceToken", namespace, "fine", {"roles": ["reader"]})
    wait_for(custom, "ServiceToken", namespace, "fine", phase_is("Active"))

    # The Secret goes (no event the operator sees: it is no token's): the token is minted into it,
    # found by the sweep over tokens waiting on something outside.
    core.delete_namespaced_secret("taken", namespace)
    minted = wait_for(custom, "ServiceToken", namespace, "wants-taken", phase_is("Active"),
                      timeout=int(UNSETTLED_AFTER + 3 * UNSETTLED_SWEEP))
    assert minted["status"]["secretName"] == "taken"
    assert core.read_namespaced_secret("taken", namespace).metadata.owner_references[0].uid == \
        minted["metadata"]["uid"]


def test_token_quota_is_refused_at_admission(operator, custom, namespace):
    create(custom, "ServiceAccount", namespace, "busy", {})
    create(custom, "RoleBinding", namespace, "busy-reader", {"serviceAccountName": "busy", "roles": ["reader"]})
    for i in range(3):
        create(custom, "ServiceToken", namespace, f"busy-{i}", {"serviceAccountName": "busy"})
        wait_for(custom, "ServiceToken", namespace, f"busy-{i}", phase_is("Active"))
    _refused(lambda: create(custom, "ServiceToken", namespace, "busy-3", {"serviceAccountName": "busy"}),
             "quota exceeded", "at most 3", "maxTokensPerAccount")


def test_account_quota_is_refused_at_admission(operator, custom, namespace):
    for i in range(3):
        create(custom, "ServiceAccount", namespace, f"acct-{i}", {})
        wait_for(custom, "ServiceAccount", namespace, f"acct-{i}", lambda o: ready_reason(o) == "Ready")
    _refused(lambda: create(custom, "ServiceAccount", namespace, "acct-3", {}),
             "quota exceeded", "maxAccountsPerNamespace")


def test_name_too_long_for_a_secret_label_is_refused(operator, custom, namespace):
    _refused(lambda: create(custom, "ServiceToken", namespace, "t" * 64, {"roles": ["reader"]}), "63")


def test_secret_deleted_by_hand_revokes_the_old_token_and_mints_a_new_one(operator, custom, core, namespace):
    create(custom, "ServiceToken", namespace, "fragile", {"roles": ["reader"]})
    before = wait_for(custom, "ServiceToken", namespace, "fragile", phase_is("Active"))["status"]
    core.delete_namespaced_secret("fragile", namespace)
    after = wait_for(custom, "ServiceToken", namespace, "fragile",
                     lambda o: o["status"].get("tokenHash") not in (None, before["tokenHash"]))
    assert after["status"]["phase"] == "Active"
    assert core.read_namespaced_secret("fragile", namespace).data["token"]
    assert "token is revoked" in wait_for_event(core, namespace, "fragile", "SecretRecreated").message


@pytest.mark.parametrize("kind, spec, field", [
    ("RoleBinding", {"project": "x,admin"}, "spec.project"),
    ("RoleBinding", {"project": "evil@shop"}, "spec.project"),
    ("RoleBinding", {"roles": ["a,b"]}, "spec.roles[0]"),
    ("IngestionAPIKey", {"project": "x,admin"}, "spec.project"),
])
def test_injected_names_are_refused_by_the_schema_on_update_too(operator, custom, namespace, kind, spec, field):
    """The API server itself refuses them (no webhook needed), also on a change of a valid object."""
    valid = {"RoleBinding": {"serviceAccountName": "acct", "roles": ["reader"], "project": "shop"},
             "IngestionAPIKey": {"project": "shop"}}[kind]
    create(custom, kind, namespace, "valid", valid)
    plural = {"RoleBinding": "rolebindings", "IngestionAPIKey": "ingestionapikeys"}[kind]
    body = _refused(lambda: custom.patch_namespaced_custom_object("tokenwarden.io", "v1alpha1", namespace, plural,
                                                                  "valid", {"spec": spec}), field, "should match")
    assert "admission webhook" not in body
