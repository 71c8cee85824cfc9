"""The operator sees only its own Secrets: token Secrets by their label, import sources by
theirs, metadata only. A label removed by hand takes a Secret out of the watch as if it were
deleted; the operator reads it by name before it acts, and nothing is revoked."""
from __future__ import annotations

import base64

from kubernetes import client, watch

from tokenwarden.kube._watching import Selection, list_selected_page, open_selected_watch

from .kubehelpers import create, get, phase_is, wait_for, wait_for_event
from .test_authenticator import _eventually

MANAGED_BY = "app.kubernetes.io/managed-by"
IMPORTABLE = "tokenwarden.io/importable"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _labelled_again(core, namespace: str, name: str, timeout: int = 60) -> client.V1Secret:
    """The Secret once it carries the managed-by label again (watched, not polled)."""
    listing = core.list_namespaced_secret(namespace, field_selector=f"metadata.name={name}")
    for secret in listing.items:
        if (secret.metadata.labels or {}).get(MANAGED_BY) == "tokenwarden":
            return secret
    stream = watch.Watch()
    for event in stream.stream(core.list_namespaced_secret, namespace, field_selector=f"metadata.name={name}",
                               resource_version=listing.metadata.resource_version, timeout_seconds=timeout):
        if (event["object"].metadata.labels or {}).get(MANAGED_BY) == "tokenwarden":
            stream.stop()
            return event["object"]
    raise AssertionError(f"Secret {namespace}/{name} did not get its label back within {timeout}s")


def _token_of(secret: client.V1Secret) -> str:
    return base64.b64decode(secret.data["token"]).decode()


def test_a_label_removed_by_hand_revokes_nothing_and_is_put_back(operator, authenticator, custom, core, namespace):
    create(custom, "ServiceToken", namespace, "agent", {"roles": ["reader"], "ttl": "24h"})
    minted = wait_for(custom, "ServiceToken", namespace, "agent", phase_is("Active"))["status"]
    before = core.read_namespaced_secret("agent", namespace)
    token = _token_of(before)
    assert _eventually(lambda: authenticator.get("/verify", {"Authorization": f"Bearer {token}"}).status_code == 200)

    # The watch selects token Secrets by this label: without it, the Secret leaves the watch
    # as if deleted, but it is still there, with its token.
    core.patch_namespaced_secret("agent", namespace, {"metadata": {"labels": {MANAGED_BY: None}}})
    after = _labelled_again(core, namespace, "agent")

    assert after.metadata.uid == before.metadata.uid
    assert _token_of(after) == token
    assert get(custom, "ServiceToken", namespace, "agent")["status"]["tokenHash"] == minted["tokenHash"]
    assert authenticator.get("/verify", {"Authorization": f"Bearer {token}"}).status_code == 200
    assert "lost the label app.kubernetes.io/managed-by=tokenwarden" in operator.log()
    reasons = {event.reason for event in core.list_namespaced_event(
        namespace, field_selector="involvedObject.name=agent").items}
    assert not reasons & {"SecretRecreated", "SecretTampered"}, reasons

    # Back in sight: a value written by hand is refused as before.
    core.patch_namespaced_secret("agent", namespace, {"data": {"token": _b64("letmein-letmein-letmein-1")}})
    wait_for_event(core, namespace, "agent", "SecretTampered")


def test_a_token_secret_deleted_by_hand_is_still_minted_again(operator, custom, core, namespace):
    create(custom, "ServiceToken", namespace, "agent", {"roles": ["reader"], "ttl": "24h"})
    minted = wait_for(custom, "ServiceToken", namespace, "agent", phase_is("Active"))["status"]
    core.delete_namespaced_secret("agent", namespace)
    status = wait_for(custom, "ServiceToken", namespace, "agent",
                      lambda o: o["status"].get("tokenHash") not in (None, minted["tokenHash"]))["status"]
    assert status["phase"] == "Active"
    assert core.read_namespaced_secret("agent", namespace).metadata.labels[MANAGED_BY] == "tokenwarden"


def test_a_selection_brings_only_what_it_names_and_metadata_only_brings_no_data(core, namespace):
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="helm-release"), data={"release": _b64("x" * 50_000)}))
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="source", labels={IMPORTABLE: "true"}), data={"token": _b64("key")}))
    selection = Selection("secrets", namespace, label_selector=f"{IMPORTABLE}=true", metadata_only=True)

    items, version, more = list_selected_page(core, selection, None)
    assert [item["metadata"]["name"] for item in items] == ["source"] and more is None
    assert "data" not in items[0] and items[0]["kind"] == "PartialObjectMetadata"

    with open_selected_watch(core, selection, version, timeout=30) as events:
        core.create_namespaced_secret(namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name="other-release"), data={"release": _b64("y" * 1000)}))
        core.patch_namespaced_secret("source", namespace, {"data": {"token": _b64("new-key")}})
        event = next(e for e in events if e["type"] != "BOOKMARK")
    assert event["type"] == "MODIFIED" and event["object"]["metadata"]["name"] == "source"
    assert "data" not in event["object"]

    by_name = Selection("secrets", namespace, field_selector="metadata.name=helm-release")
    items, _, _ = list_selected_page(core, by_name, None)
    assert [item["metadata"]["name"] for item in items] == ["helm-release"] and "data" in items[0]
