"""The bootstrap token from Helm values: created once, never extended, replaced, revoked."""
from __future__ import annotations

import base64
import hashlib

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from .kubehelpers import GROUP, VERSION, get, phase_is, wait_for, wait_for_event

NAMESPACE = "tokenwarden-bootstrap"
SECRET = "tokenwarden-bootstrap"
TOKEN = "tokenwarden-bootstrap"
VALUE = "b00tstrap-9f8e7d6c5b4a3210fedcba98765432"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def bootstrap_namespace(core):
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    yield NAMESPACE
    core.delete_namespace(NAMESPACE)
    for event in watch.Watch().stream(core.list_namespace, field_selector=f"metadata.name={NAMESPACE}",
                                      timeout_seconds=60):
        if event["type"] == "DELETED":
            break


def _write_values(core, token=VALUE, roles="power-user", ttl="24h"):
    data = {"token": _b64(token), "roles": _b64(roles)}
    if ttl:
        data["ttl"] = _b64(ttl)
    body = client.V1Secret(metadata=client.V1ObjectMeta(name=SECRET), data=data)
    try:
        core.replace_namespaced_secret(SECRET, NAMESPACE, body)
    except ApiException as exc:
        if exc.status != 404:
            raise
        core.create_namespaced_secret(NAMESPACE, body)


def _gone(custom, timeout=30) -> bool:
    listing = custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "servicetokens",
                                                   field_selector=f"metadata.name={TOKEN}")
    if not listing["items"]:
        return True
    for event in watch.Watch().stream(custom.list_namespaced_custom_object, GROUP, VERSION, NAMESPACE,
                                      "servicetokens", field_selector=f"metadata.name={TOKEN}",
                                      resource_version=listing["metadata"]["resourceVersion"],
                                      timeout_seconds=timeout):
        if event["type"] == "DELETED":
            return True
    return False


def test_bootstrap_token_lifecycle(operator, custom, core, bootstrap_namespace):
    _write_values(core)
    token = wait_for(custom, "ServiceToken", NAMESPACE, TOKEN, phase_is("Active"))
    status = token["status"]
    assert status["tokenHash"] == _sha(VALUE)
    assert status["effectiveRoles"] == ["power-user"]
    assert status["expiresAt"] > status["issuedAt"]
    assert VALUE not in str(token) and VALUE not in operator.log()

    # A restart (an upgrade with the same values) never extends the ttl.
    operator.restart()
    _write_values(core)  # helm upgrade rewrites the same Secret
    again = get(custom, "ServiceToken", NAMESPACE, TOKEN)["status"]
    assert (again["issuedAt"], again["expiresAt"], again["tokenHash"]) == (
        status["issuedAt"], status["expiresAt"], status["tokenHash"])

    # A new token value replaces the old one.
    new_value = VALUE.replace("b00t", "n3wt")
    _write_values(core, token=new_value)
    wait_for(custom, "ServiceToken", NAMESPACE, TOKEN, lambda o: o["status"].get("tokenHash") == _sha(new_value))

    # Values without a bootstrap section (no Secret) revoke it.
    core.delete_namespaced_secret(SECRET, NAMESPACE)
    assert _gone(custom)


def test_weak_bootstrap_token_is_refused_with_a_clear_message(operator, custom, core, bootstrap_namespace):
    _write_values(core, token="short")
    event = wait_for_event(core, NAMESPACE, SECRET, "BootstrapRefused", contains="at least 32")
    assert "openssl rand" in event.message
    _write_values(core, token="a" * 40)
    wait_for_event(core, NAMESPACE, SECRET, "BootstrapRefused", contains="distinct characters")
    assert _gone(custom, timeout=3)
    assert operator.process.poll() is None  # refused, and the operator keeps running
