"""Rotation: successor before expiry, old token kept for the overlap, workloads rolled once."""
from __future__ import annotations

import base64
import hashlib

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from .test_authenticator import _eventually
from .kubehelpers import GROUP, VERSION, create, get, phase_is, wait_for, wait_for_event


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _daemonset(api_client, namespace, name):
    """The profiling agent's DaemonSet that mounts the token's Secret."""
    client.AppsV1Api(api_client).create_namespaced_daemon_set(namespace, client.V1DaemonSet(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DaemonSetSpec(
            selector=client.V1LabelSelector(match_labels={"app": name}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": name}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="agent", image="agent:1")])))))


def _template_changes(api_client, namespace, name) -> int:
    """How often the pod template changed: the DaemonSet's generation beyond its first."""
    return client.AppsV1Api(api_client).read_namespaced_daemon_set(name, namespace).metadata.generation - 1


def _restarted_at(api_client, namespace, name, timeout=20):
    """The DaemonSet's restartedAt annotation, once the operator has set it."""
    apps = client.AppsV1Api(api_client)
    listing = apps.list_namespaced_daemon_set(namespace, field_selector=f"metadata.name={name}")

    def annotation(daemonset):
        return (daemonset.spec.template.metadata.annotations or {}).get("kubectl.kubernetes.io/restartedAt")

    if annotation(listing.items[0]):
        return annotation(listing.items[0])
    for event in watch.Watch().stream(apps.list_namespaced_daemon_set, namespace,
                                      field_selector=f"metadata.name={name}",
                                      resource_version=listing.metadata.resource_version, timeout_seconds=timeout):
        if annotation(event["object"]):
            return annotation(event["object"])
    return None


def _secret(core, namespace, name):
    data = core.read_namespaced_secret(name, namespace).data
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def test_rotates_before_expiry_and_restarts_targets_once(operator, api_client, custom, core, namespace):
    _daemonset(api_client, namespace, "agent")
    create(custom, "ServiceToken", namespace, "rolling", {
        "roles": ["writer"], "ttl": "8s",
        "rotation": {"renewBefore": "5s", "restartTargets": [{"kind": "DaemonSet", "name": "agent"},
                                                             {"kind": "Deployment", "name": "missing"}]}})
    first = wait_for(custom, "ServiceToken", namespace, "rolling", phase_is("Active"))["status"]
    old = _secret(core, namespace, "rolling")["token"]
    rotated = wait_for(custom, "ServiceToken", namespace, "rolling", lambda o: o["status"].get("rotatedAt"))
    status = rotated["status"]
    secret = _secret(core, namespace, "rolling")
    assert secret["token.previous"] == old and secret["token"] != old
    assert status["tokenHash"] == _sha(secret["token"])
    assert status["previousTokenHash"] == first["tokenHash"]
    assert status["previousValidUntil"] <= first["expiresAt"]
    assert status["expiresAt"] > first["expiresAt"]
    assert _restarted_at(api_client, namespace, "agent") == status["rotatedAt"]
    wait_for_event(core, namespace, "rolling", "RestartTargetNotFound")
    assert old not in operator.log() and secret["token"] not in operator.log()


def test_manual_rotation_by_annotation(operator, authenticator, api_client, custom, core, namespace):
    _daemonset(api_client, namespace, "collector")
    create(custom, "IngestionAPIKey", namespace, "on-demand", {"ttl": "1h", "rotation": {
        "renewBefore": "10m", "restartTargets": [{"kind": "DaemonSet", "name": "collector"}]}})
    wait_for(custom, "IngestionAPIKey", namespace, "on-demand", phase_is("Active"))
    old = _secret(core, namespace, "on-demand")["token"]
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "ingestionapikeys", "on-demand",
                                          {"metadata": {"annotations": {"tokenwarden.io/rotate": "ticket-42"}}})
    done = wait_for(custom, "IngestionAPIKey", namespace, "on-demand",
                    lambda o: o["status"].get("rotationRequest") == "ticket-42")
    assert done["status"]["previousTokenHash"] == _sha(old)
    new = _secret(core, namespace, "on-demand")["token"]
    assert new != old
    # During the overlap both verify.
    assert _eventually(lambda: authenticator.get("/verify", {"X-API-Key": new}).status_code == 200)
    assert authenticator.get("/verify", {"X-API-Key": old}).status_code == 200
    # The same request is not acted on twice.
    rotated_at = done["status"]["rotatedAt"]
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "ingestionapikeys", "on-demand",
                                          {"metadata": {"labels": {"touched": "yes"}}})
    wait_for(custom, "IngestionAPIKey", namespace, "on-demand", lambda o: o["metadata"]["labels"].get("touched"))
    assert get(custom, "IngestionAPIKey", namespace, "on-demand")["status"]["rotatedAt"] == rotated_at
    # The DaemonSet's pod template changed exactly once, for the one rotation.
    assert _restarted_at(api_client, namespace, "collector") == rotated_at
    assert _template_changes(api_client, namespace, "collector") == 1


def test_rotation_with_a_fixed_expiration_is_refused(operator, custom, namespace):
    with pytest.raises(ApiException) as refused:
        create(custom, "ServiceToken", namespace, "fixed", {
            "roles": ["reader"], "expiration": "2099-01-01", "rotation": {"renewBefore": "1d"}})
    assert "rotation needs spec.ttl" in refused.value.body
    with pytest.raises(ApiException) as refused:
        create(custom, "ServiceToken", namespace, "too-eager", {
            "roles": ["reader"], "ttl": "1h", "rotation": {"renewBefore": "2h"}})
    assert "renewBefore must be shorter than ttl" in refused.value.body
