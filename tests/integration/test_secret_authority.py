"""The Secret's value is not the authority: a value tokenwarden did not write for a token is
never taken for it, whether it was written by hand, planted before a crash left no status,
or dressed up as an unfinished rotation. The token is minted anew, with an event."""
from __future__ import annotations

import base64
import hashlib

from kubernetes import client

from tokenwarden.tokens import mint_token

from .kubehelpers import GROUP, VERSION, create, get, phase_is, wait_for, wait_for_event
from .test_authenticator import _eventually

WEAK = "letmein-letmein-letmein-letmein-1"


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _secret(core, namespace, name) -> tuple[dict[str, str], dict[str, str]]:
    secret = core.read_namespaced_secret(name, namespace)
    return ({k: base64.b64decode(v).decode() for k, v in secret.data.items()},
            dict(secret.metadata.annotations or {}))


def _verifies(authenticator, token: str) -> bool:
    return authenticator.get("/verify", {"Authorization": f"Bearer {token}"}).status_code == 200


def _refused(authenticator, token: str) -> bool:
    return authenticator.get("/verify", {"Authorization": f"Bearer {token}"}).status_code == 401


def _no_token_anywhere(operator, core, namespace, *values: str) -> None:
    events = str(core.list_namespaced_event(namespace).to_dict())
    for value in values:
        assert value not in operator.log() and value not in events


def test_a_value_written_by_hand_is_refused_and_a_new_token_minted(operator, authenticator, custom, core,
                                                                      namespace):
    create(custom, "ServiceToken", namespace, "agent", {"roles": ["reader"], "ttl": "24h"})
    minted = wait_for(custom, "ServiceToken", namespace, "agent", phase_is("Active"))["status"]
    original = _secret(core, namespace, "agent")[0]["token"]
    assert _eventually(lambda: _verifies(authenticator, original))

    # Someone with patch on Secrets writes a value of their choosing.
    core.patch_namespaced_secret("agent", namespace, {"data": {"token": _b64(WEAK)}})
    event = wait_for_event(core, namespace, "agent", "SecretTampered")
    assert "'agent'" in event.message and "minted into the Secret" in event.message
    status = wait_for(custom, "ServiceToken", namespace, "agent",
                      lambda o: o["status"]["tokenHash"] != minted["tokenHash"])["status"]
    data, annotations = _secret(core, namespace, "agent")
    assert data["token"] not in (WEAK, original)
    assert status["tokenHash"] == _sha(data["token"]) == annotations["tokenwarden.io/token-hash"]
    assert status["tokenHash"] != _sha(WEAK)
    # The replacement does not outlive the token it replaced.
    assert (status["issuedAt"], status["expiresAt"]) == (minted["issuedAt"], minted["expiresAt"])
    assert _eventually(lambda: _verifies(authenticator, data["token"]))
    assert _refused(authenticator, WEAK) and _refused(authenticator, original)
    _no_token_anywhere(operator, core, namespace, WEAK, original, data["token"])


def test_a_value_with_a_forged_record_is_refused_at_the_next_reconcile(operator, authenticator, custom, core,
                                                                        namespace):
    """Writing the hash annotation too costs the watcher its cheap signal, but the status still
    decides: the value never verifies, and the next reconcile replaces it."""
    create(custom, "IngestionAPIKey", namespace, "collector", {"description": "v1"})
    minted = wait_for(custom, "IngestionAPIKey", namespace, "collector", phase_is("Active"))["status"]
    original = _secret(core, namespace, "collector")[0]["token"]
    core.patch_namespaced_secret("collector", namespace, {
        "metadata": {"annotations": {"tokenwarden.io/token-hash": _sha(WEAK)}}, "data": {"token": _b64(WEAK)}})
    assert get(custom, "IngestionAPIKey", namespace, "collector")["status"]["tokenHash"] == minted["tokenHash"]
    assert _refused(authenticator, WEAK)

    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "ingestionapikeys", "collector",
                                          {"spec": {"description": "v2"}})
    wait_for_event(core, namespace, "collector", "SecretTampered")
    status = wait_for(custom, "IngestionAPIKey", namespace, "collector",
                      lambda o: o["status"]["tokenHash"] != minted["tokenHash"])["status"]
    data, _ = _secret(core, namespace, "collector")
    assert status["tokenHash"] == _sha(data["token"]) != _sha(WEAK)
    assert _eventually(lambda: _refused(authenticator, original))
    assert _refused(authenticator, WEAK)


def test_rotation_never_takes_its_successor_from_the_secret(operator, authenticator, custom, core, namespace):
    """A Secret made to look like a rotation whose status was never written (a successor, its
    recorded hash, the current token as previous): the rotation keeps the current token for the
    overlap and mints its own successor."""
    create(custom, "IngestionAPIKey", namespace, "rotating", {"ttl": "1h", "rotation": {"renewBefore": "10m"}})
    minted = wait_for(custom, "IngestionAPIKey", namespace, "rotating", phase_is("Active"))["status"]
    current = _secret(core, namespace, "rotating")[0]["token"]
    core.patch_namespaced_secret("rotating", namespace, {
        "metadata": {"annotations": {"tokenwarden.io/token-hash": _sha(WEAK)}},
        "data": {"token": _b64(WEAK), "token.previous": _b64(current)}})
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "ingestionapikeys", "rotating",
                                          {"metadata": {"annotations": {"tokenwarden.io/rotate": "now"}}})
    status = wait_for(custom, "IngestionAPIKey", namespace, "rotating",
                      lambda o: o["status"].get("rotationRequest") == "now")["status"]
    data, _ = _secret(core, namespace, "rotating")
    assert data["token"] != WEAK and status["tokenHash"] == _sha(data["token"])
    assert status["previousTokenHash"] == minted["tokenHash"] and data["token.previous"] == current
    assert _eventually(lambda: _verifies(authenticator, data["token"]))
    assert _verifies(authenticator, current) and _refused(authenticator, WEAK)


def test_a_rotation_of_a_tampered_secret_keeps_no_previous_token(operator, authenticator, custom, core, namespace):
    create(custom, "IngestionAPIKey", namespace, "spoiled", {"ttl": "1h", "rotation": {"renewBefore": "10m"}})
    wait_for(custom, "IngestionAPIKey", namespace, "spoiled", phase_is("Active"))
    current = _secret(core, namespace, "spoiled")[0]["token"]
    # Value and record written by hand, the current token not kept beside them.
    core.patch_namespaced_secret("spoiled", namespace, {
        "metadata": {"annotations": {"tokenwarden.io/token-hash": _sha(WEAK)}}, "data": {"token": _b64(WEAK)}})
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "ingestionapikeys", "spoiled",
                                          {"metadata": {"annotations": {"tokenwarden.io/rotate": "now"}}})
    status = wait_for(custom, "IngestionAPIKey", namespace, "spoiled",
                      lambda o: o["status"].get("rotationRequest") == "now")["status"]
    wait_for_event(core, namespace, "spoiled", "SecretTampered")
    data, _ = _secret(core, namespace, "spoiled")
    assert status["tokenHash"] == _sha(data["token"]) and "token.previous" not in data
    assert status.get("previousTokenHash") is None
    assert _eventually(lambda: _refused(authenticator, current))
    assert _refused(authenticator, WEAK) and _verifies(authenticator, data["token"])


def _crash_left_secret(core, namespace, token: dict, value: str, recorded: str | None) -> None:
    """The Secret as a crash between its creation and the status leaves it (``recorded``: the
    hash annotation tokenwarden writes with it), or as someone planted it meanwhile."""
    annotations = {"tokenwarden.io/token-id": "100000000000001", "tokenwarden.io/issued-at": "2026-01-01T00:00:00Z"}
    if recorded:
        annotations["tokenwarden.io/token-hash"] = recorded
    name = token["metadata"]["name"]
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(
            name=name, annotations=annotations,
            labels={"app.kubernetes.io/managed-by": "tokenwarden", "tokenwarden.io/token": name,
                    "tokenwarden.io/kind": "servicetoken"},
            owner_references=[client.V1OwnerReference(
                api_version=f"{GROUP}/{VERSION}", kind="ServiceToken", name=name, uid=token["metadata"]["uid"],
                controller=True, block_owner_deletion=True)]),
        type="Opaque", data={"token": _b64(value)}))


def test_crash_recovery_takes_only_tokenwardens_own_value(operator, authenticator, custom, core, namespace):
    ours = mint_token("twst")
    operator.stop(kill=True)
    try:
        crashed = create(custom, "ServiceToken", namespace, "crashed", {"roles": ["reader"]})
        planted = create(custom, "ServiceToken", namespace, "planted", {"roles": ["reader"]})
        relabelled = create(custom, "ServiceToken", namespace, "relabelled", {"roles": ["reader"]})
        _crash_left_secret(core, namespace, crashed, ours, _sha(ours))
        _crash_left_secret(core, namespace, planted, WEAK, None)
        _crash_left_secret(core, namespace, relabelled, WEAK, _sha(ours))  # a record of another value
    finally:
        operator.start()

    recovered = wait_for(custom, "ServiceToken", namespace, "crashed", phase_is("Active"))["status"]
    assert recovered["tokenHash"] == _sha(ours)
    assert _secret(core, namespace, "crashed")[0]["token"] == ours
    assert _eventually(lambda: _verifies(authenticator, ours))

    for name in ("planted", "relabelled"):
        status = wait_for(custom, "ServiceToken", namespace, name, phase_is("Active"))["status"]
        wait_for_event(core, namespace, name, "SecretTampered")
        data, annotations = _secret(core, namespace, name)
        assert data["token"] != WEAK and status["tokenHash"] == _sha(data["token"])
        assert annotations["tokenwarden.io/token-hash"] == status["tokenHash"]
        assert _eventually(lambda value=data["token"]: _verifies(authenticator, value))
    assert _refused(authenticator, WEAK)
    _no_token_anywhere(operator, core, namespace, WEAK, ours)
