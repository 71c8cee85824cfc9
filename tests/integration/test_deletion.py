"""Deletion needs nobody: with the operator killed (-9), a deleted token is gone at once and its
Secret is garbage-collected, a namespace with tokens in it goes, and an account deleted or
re-created meanwhile revokes its tokens when the operator is back. The orphan collector
leaves alone labelled Secrets that no token owns."""
from __future__ import annotations

import base64
import uuid

import pytest
from kubernetes import client, watch

from .kubehelpers import GROUP, PLURALS, VERSION, create, get, phase_is, ready_reason, wait_for
from .test_minting import _account_with_binding, _wait_gone

OLD_FINALIZER = "tokenwarden.io/finalizer"


def _delete(custom, kind: str, namespace: str, name: str) -> None:
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], name)


def _absent(custom, kind: str, namespace: str, name: str) -> bool:
    try:
        get(custom, kind, namespace, name)
    except client.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def _wait_deleted(custom, kind: str, namespace: str, name: str, timeout: int = 60) -> None:
    listing = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind],
                                                   field_selector=f"metadata.name={name}")
    if not listing["items"]:
        return
    for event in watch.Watch().stream(custom.list_namespaced_custom_object, GROUP, VERSION, namespace,
                                      PLURALS[kind], field_selector=f"metadata.name={name}",
                                      resource_version=listing["metadata"]["resourceVersion"],
                                      timeout_seconds=timeout):
        if event["type"] == "DELETED":
            return
    pytest.fail(f"{kind} {namespace}/{name} still exists after {timeout}s: {get(custom, kind, namespace, name)!r}")


def test_no_kind_carries_a_finalizer(operator, custom, namespace):
    _account_with_binding(custom, namespace, "plain", ("reader",))
    create(custom, "ServiceToken", namespace, "plain-token", {"serviceAccountName": "plain", "ttl": "1h"})
    create(custom, "IngestionAPIKey", namespace, "plain-key", {"ttl": "1h"})
    wait_for(custom, "ServiceToken", namespace, "plain-token", phase_is("Active"))
    wait_for(custom, "IngestionAPIKey", namespace, "plain-key", phase_is("Active"))
    for kind, name in (("ServiceAccount", "plain"), ("RoleBinding", "plain-reader"),
                       ("ServiceToken", "plain-token"), ("IngestionAPIKey", "plain-key")):
        assert not get(custom, kind, namespace, name)["metadata"].get("finalizers"), (kind, name)


def test_a_token_deleted_while_the_operator_is_down_is_gone_at_once(operator, custom, core, namespace):
    create(custom, "ServiceToken", namespace, "dropped", {"roles": ["reader"], "ttl": "1h"})
    create(custom, "IngestionAPIKey", namespace, "dropped-key", {"ttl": "1h"})
    wait_for(custom, "ServiceToken", namespace, "dropped", phase_is("Active"))
    wait_for(custom, "IngestionAPIKey", namespace, "dropped-key", phase_is("Active"))
    operator.stop(kill=True)
    try:
        _delete(custom, "ServiceToken", namespace, "dropped")
        _delete(custom, "IngestionAPIKey", namespace, "dropped-key")
        assert _absent(custom, "ServiceToken", namespace, "dropped")
        assert _absent(custom, "IngestionAPIKey", namespace, "dropped-key")
        # kube-controller-manager's garbage collector, not the operator, deletes the Secrets.
        _wait_gone(core, namespace, "dropped", timeout=60)
        _wait_gone(core, namespace, "dropped-key", timeout=60)
    finally:
        operator.start()


def test_a_namespace_with_tokens_goes_while_the_operator_is_down(operator, custom, core):
    namespace = f"doomed-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    _account_with_binding(custom, namespace, "doomed", ("reader",))
    create(custom, "ServiceToken", namespace, "doomed-token", {"serviceAccountName": "doomed", "ttl": "1h"})
    create(custom, "IngestionAPIKey", namespace, "doomed-key", {"ttl": "1h"})
    wait_for(custom, "ServiceToken", namespace, "doomed-token", phase_is("Active"))
    wait_for(custom, "IngestionAPIKey", namespace, "doomed-key", phase_is("Active"))
    operator.stop(kill=True)
    try:
        core.delete_namespace(namespace)
        listing = core.list_namespace(field_selector=f"metadata.name={namespace}")
        gone = not listing.items
        if not gone:
            for event in watch.Watch().stream(core.list_namespace, field_selector=f"metadata.name={namespace}",
                                              resource_version=listing.metadata.resource_version,
                                              timeout_seconds=90):
                if event["type"] == "DELETED":
                    gone = True
                    break
        assert gone, f"namespace {namespace} still exists: {core.read_namespace(namespace).status!r}"
    finally:
        operator.start()


def test_an_account_deleted_while_the_operator_is_down_revokes_its_tokens(operator, custom, core, namespace):
    _account_with_binding(custom, namespace, "leaver", ("reader",))
    create(custom, "ServiceToken", namespace, "leaver-token", {"serviceAccountName": "leaver"})
    wait_for(custom, "ServiceToken", namespace, "leaver-token", phase_is("Active"))
    operator.stop(kill=True)
    try:
        _delete(custom, "ServiceAccount", namespace, "leaver")
    finally:
        operator.start()
    revoked = wait_for(custom, "ServiceToken", namespace, "leaver-token", phase_is("Revoked"))
    assert ready_reason(revoked) == "AccountDeleted"
    _wait_gone(core, namespace, "leaver-token")

    # The same name again is another account: the old token stays revoked. A token minted
    # for the new account shows the operator has seen it.
    create(custom, "ServiceAccount", namespace, "leaver", {})
    create(custom, "ServiceToken", namespace, "newcomer-token", {"serviceAccountName": "leaver"})
    wait_for(custom, "ServiceToken", namespace, "newcomer-token", phase_is("Active"))
    old = get(custom, "ServiceToken", namespace, "leaver-token")
    assert old["status"]["phase"] == "Revoked"
    assert ready_reason(old) == "AccountDeleted"
    assert not core.list_namespaced_secret(namespace, field_selector="metadata.name=leaver-token").items


def test_an_account_recreated_while_the_operator_is_down_revokes_the_old_tokens(operator, custom, core, namespace):
    _account_with_binding(custom, namespace, "twin", ("reader",))
    create(custom, "ServiceToken", namespace, "twin-token", {"serviceAccountName": "twin"})
    first = wait_for(custom, "ServiceToken", namespace, "twin-token", phase_is("Active"))
    account_uid = get(custom, "ServiceAccount", namespace, "twin")["metadata"]["uid"]
    assert first["status"]["accountUID"] == account_uid
    operator.stop(kill=True)
    try:
        _delete(custom, "ServiceAccount", namespace, "twin")
        _wait_deleted(custom, "ServiceAccount", namespace, "twin")
        create(custom, "ServiceAccount", namespace, "twin", {})
    finally:
        operator.start()
    revoked = wait_for(custom, "ServiceToken", namespace, "twin-token", phase_is("Revoked"))
    assert ready_reason(revoked) in ("AccountRecreated", "AccountReplaced")
    _wait_gone(core, namespace, "twin-token")


def test_a_finalizer_of_an_older_version_is_removed(operator, custom, namespace):
    create(custom, "ServiceToken", namespace, "legacy", {"roles": ["reader"]})
    create(custom, "ServiceToken", namespace, "legacy-deleted", {"roles": ["reader"]})
    wait_for(custom, "ServiceToken", namespace, "legacy", phase_is("Active"))
    wait_for(custom, "ServiceToken", namespace, "legacy-deleted", phase_is("Active"))
    operator.stop(kill=True)
    try:
        for name in ("legacy", "legacy-deleted"):
            custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", name,
                                                  {"metadata": {"finalizers": [OLD_FINALIZER]}})
        _delete(custom, "ServiceToken", namespace, "legacy-deleted")  # held by the old finalizer
        assert get(custom, "ServiceToken", namespace, "legacy-deleted")["metadata"].get("deletionTimestamp")
    finally:
        operator.start()
    _wait_deleted(custom, "ServiceToken", namespace, "legacy-deleted")
    wait_for(custom, "ServiceToken", namespace, "legacy",
             lambda obj: OLD_FINALIZER not in (obj["metadata"].get("finalizers") or []))
    _delete(custom, "ServiceToken", namespace, "legacy")
    assert _absent(custom, "ServiceToken", namespace, "legacy")


def _secret(name: str, owner_uid: str | None) -> client.V1Secret:
    labels = {"app.kubernetes.io/managed-by": "tokenwarden", "tokenwarden.io/token": name}
    owners = [client.V1OwnerReference(api_version=f"{GROUP}/{VERSION}", kind="ServiceToken", name=name,
                                      uid=owner_uid, controller=True)] if owner_uid else None
    return client.V1Secret(metadata=client.V1ObjectMeta(name=name, labels=labels, owner_references=owners),
                           data={"token": base64.b64encode(b"copied-by-a-mirroring-tool").decode()})


def test_the_orphan_collector_leaves_secrets_no_token_owns(operator, custom, core, namespace):
    # A mirroring tool's copy: our labels, no owner reference.
    core.create_namespaced_secret(namespace, _secret("mirrored", None))
    # A Secret whose controlling token is gone (its uid never existed): the collector's.
    core.create_namespaced_secret(namespace, _secret("orphaned", str(uuid.uuid4())))
    _wait_gone(core, namespace, "orphaned")
    # Restarting lists every Secret again: the copy is looked at once more, and kept.
    operator.restart()
    create(custom, "ServiceToken", namespace, "after-restart", {"roles": ["reader"]})
    wait_for(custom, "ServiceToken", namespace, "after-restart", phase_is("Active"))
    assert core.read_namespaced_secret("mirrored", namespace).data["token"]
