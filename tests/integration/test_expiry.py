"""Expiry: at expiresAt the Secret goes and the phase turns Expired; after retention the object goes."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from kubernetes import watch

from .kubehelpers import GROUP, VERSION, create, phase_is, ready_reason, wait_for, wait_for_event
from .test_minting import _wait_gone


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_token_expires_on_time_and_is_collected_after_retention(operator, custom, core, namespace):
    create(custom, "ServiceToken", namespace, "brief", {"roles": ["reader"], "ttl": "3s"})
    active = wait_for(custom, "ServiceToken", namespace, "brief", phase_is("Active"))
    expires_at = _time(active["status"]["expiresAt"])
    assert expires_at - _time(active["status"]["issuedAt"]) == timedelta(seconds=3)

    expired = wait_for(custom, "ServiceToken", namespace, "brief", phase_is("Expired"))
    assert ready_reason(expired) == "Expired"
    noticed = datetime.now(timezone.utc)
    assert noticed >= expires_at
    _wait_gone(core, namespace, "brief")
    assert "expired" in wait_for_event(core, namespace, "brief", "Expired").message

    # expiredRetention is 4s in the test settings: the object itself is then deleted.
    listing = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens",
                                                   field_selector="metadata.name=brief")
    if listing["items"]:
        for event in watch.Watch().stream(custom.list_namespaced_custom_object, GROUP, VERSION, namespace,
                                          "servicetokens", field_selector="metadata.name=brief",
                                          resource_version=listing["metadata"]["resourceVersion"],
                                          timeout_seconds=30):
            if event["type"] == "DELETED":
                break
        else:
            raise AssertionError("expired token was not collected after the retention")


def test_ingestion_key_expires_too(operator, custom, core, namespace):
    create(custom, "IngestionAPIKey", namespace, "brief-key", {"ttl": "2s"})
    wait_for(custom, "IngestionAPIKey", namespace, "brief-key", phase_is("Active"))
    wait_for(custom, "IngestionAPIKey", namespace, "brief-key", phase_is("Expired"))
    _wait_gone(core, namespace, "brief-key")


def test_secrets_owned_by_a_token_that_is_gone_are_removed(operator, core, namespace):
    """A Secret whose controlling owner is a token uid that no longer exists goes (the garbage
    collector or the orphan collector, whichever comes first); a labelled copy that names no
    owner is another tool's and stays (test_deletion.py)."""
    import uuid

    from kubernetes import client as k8s

    owner = k8s.V1OwnerReference(api_version=f"{GROUP}/{VERSION}", kind="ServiceToken", name="long-gone",
                                 uid=str(uuid.uuid4()), controller=True)
    core.create_namespaced_secret(namespace, k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="orphan", owner_references=[owner],
                                  labels={"app.kubernetes.io/managed-by": "tokenwarden",
                                          "tokenwarden.io/token": "long-gone"}),
        data={"token": "b3JwaGFu"}))
    _wait_gone(core, namespace, "orphan")


def test_absurd_and_zero_ttls_are_refused(operator, custom, namespace):
    import pytest
    from kubernetes.client.rest import ApiException

    for ttl, words in (("10000000h", "longer than the limit"), ("0s", "longer than 0s")):
        with pytest.raises(ApiException) as refused:
            create(custom, "ServiceToken", namespace, "absurd", {"roles": ["reader"], "ttl": ttl})
        assert words in refused.value.body
