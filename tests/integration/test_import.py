"""Adopting existing keys: only the hash is kept, the source is never touched, and an
imported key lives exactly as a minted one (verification, roles, last use, expiry,
revocation)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import threading

import pytest
from kubernetes import client

from tokenwarden import devcluster

from ..conftest import OPERATOR_NAMESPACE, TEST_SETTINGS, AuthenticatorProcess
from .kubehelpers import (
    GROUP,
    KUBE_AUDIENCE,
    VERSION,
    create,
    credential_forms,
    get,
    kube_apiserver_user,
    phase_is,
    ready_reason,
    wait_for,
    wait_for_event,
)
from .test_authenticator import _eventually, accepted_in_every_form
from .test_minting import _wait_gone

GRAFANA_KEY = "glsa_Qm9ndXNLZXlGb3JUZXN0aW5nT25seQ_1a2b3c4d"
OPAQUE_KEY = "0paque-import-key-5d2e8b7c93a1f4"
IMPORTABLE = {"tokenwarden.io/importable": "true"}
IMPORT_KEY_SECRET = "tokenwarden-import-key"


def _source(core, namespace, name, value: str | bytes, key="token", labels=IMPORTABLE):
    raw = value.encode() if isinstance(value, str) else value
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name=name, labels=labels), data={key: base64.b64encode(raw).decode()}))
    return core.read_namespaced_secret(name, namespace)


def _sha(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def _import_key(core) -> bytes:
    secret = core.read_namespaced_secret(IMPORT_KEY_SECRET, OPERATOR_NAMESPACE)
    return base64.b64decode(secret.data["key"])


def _kept(core, value: str) -> str:
    """The hash an imported key is kept as: an HMAC under the operator's import key."""
    return "hmac-sha256:" + hmac.new(_import_key(core), value.encode(), hashlib.sha256).hexdigest()


def _unchanged(core, namespace, before) -> bool:
    after = core.read_namespaced_secret(before.metadata.name, namespace)
    return (after.data == before.data and after.metadata.resource_version == before.metadata.resource_version
            and not after.metadata.owner_references)


# The opaque key is stored as `kubectl create secret --from-file` leaves it: with a newline.
@pytest.mark.parametrize("key, stored", [(GRAFANA_KEY, GRAFANA_KEY), (OPAQUE_KEY, OPAQUE_KEY + "\n")],
                         ids=["glsa", "opaque"])
def test_imported_key_verifies_in_every_form_until_its_token_is_deleted(
        cluster, operator, authenticator, custom, core, namespace, key, stored):
    before = _source(core, namespace, "legacy-key", stored)
    create(custom, "ServiceToken", namespace, "legacy", {
        "roles": ["writer"], "secretName": "legacy-copy", "import": {"secretRef": {"name": "legacy-key"}},
        "audiences": [KUBE_AUDIENCE]})  # kube-apiserver asks for its own audience
    token = wait_for(custom, "ServiceToken", namespace, "legacy", phase_is("Active"))
    assert token["status"]["tokenHash"] == _kept(core, key) != _sha(key)
    assert token["status"]["imported"] is True
    copy = core.read_namespaced_secret("legacy-copy", namespace)
    assert base64.b64decode(copy.data["token"]).decode() == key
    assert key not in str(token) and key not in operator.log()

    # A foreign format goes straight to the hash lookup (no checksum rejection), in every form.
    assert accepted_in_every_form(authenticator, key, "/verify?permission=write") == {
        (f"tokenwarden:{namespace}:token:legacy", "writer")}
    forms = credential_forms(key)
    assert authenticator.get("/verify?permission=admin", forms[0]).status_code == 403
    if cluster.plane is not None:
        user = _eventually(lambda: kube_apiserver_user(cluster, key))
        assert user is not None and user.username == f"tokenwarden:{namespace}:token:legacy"
    assert wait_for(custom, "ServiceToken", namespace, "legacy", lambda o: o["status"].get("lastUsedAt"))

    # Deleting the token revokes the key and leaves the user's Secret byte for byte as it was.
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", "legacy")
    assert _eventually(lambda: authenticator.get("/verify", forms[3]).status_code == 401)
    _wait_gone(core, namespace, "legacy-copy")
    assert _unchanged(core, namespace, before)
    assert key not in authenticator.log()


def test_imported_key_expires_and_its_source_stays(operator, authenticator, custom, core, namespace):
    key = f"expiring-key-{namespace}"
    before = _source(core, namespace, "short-lived", key)
    create(custom, "ServiceToken", namespace, "short-lived", {
        "roles": ["reader"], "ttl": "3s", "secretName": "short-lived-copy",
        "import": {"secretRef": {"name": "short-lived"}}})
    wait_for(custom, "ServiceToken", namespace, "short-lived", phase_is("Active"))
    headers = {"X-API-Key": key}
    expired = wait_for(custom, "ServiceToken", namespace, "short-lived", phase_is("Expired"))
    assert ready_reason(expired) == "Expired"
    assert _eventually(lambda: authenticator.get("/verify", headers).status_code == 401)
    _wait_gone(core, namespace, "short-lived-copy")
    assert _unchanged(core, namespace, before)


def test_changed_source_is_rehashed(operator, authenticator, custom, core, namespace):
    _source(core, namespace, "rotating", "first-value-0123456789")
    create(custom, "ServiceToken", namespace, "rotating", {
        "roles": ["reader"], "import": {"secretRef": {"name": "rotating"}}})
    wait_for(custom, "ServiceToken", namespace, "rotating", phase_is("Active"))
    core.patch_namespaced_secret("rotating", namespace, {
        "data": {"token": base64.b64encode(b"second-value-0123456789").decode()}})
    wait_for(custom, "ServiceToken", namespace, "rotating",
             lambda o: o["status"].get("tokenHash") == _kept(core, "second-value-0123456789"))
    wait_for_event(core, namespace, "rotating", "ImportedKeyChanged")
    assert _eventually(lambda: authenticator.get("/verify", {"X-API-Key": "second-value-0123456789"}).status_code
                       == 200)
    assert authenticator.get("/verify", {"X-API-Key": "first-value-0123456789"}).status_code == 401


def test_deleted_source_is_reported_and_the_key_stays_valid(operator, authenticator, custom, core, namespace):
    key = f"going-key-{namespace}"
    _source(core, namespace, "going", key)
    create(custom, "ServiceToken", namespace, "going", {
        "roles": ["reader"], "import": {"secretRef": {"name": "going"}}})
    wait_for(custom, "ServiceToken", namespace, "going", phase_is("Active"))
    core.delete_namespaced_secret("going", namespace)
    wait_for_event(core, namespace, "going", "ImportSourceDeleted", contains="stays valid")
    assert get(custom, "ServiceToken", namespace, "going")["status"]["phase"] == "Active"
    assert _eventually(lambda: authenticator.get("/verify", {"X-API-Key": key}).status_code == 200)


def test_a_source_deleted_while_the_operator_is_down_is_reported_once_it_is_back(
        operator, authenticator, custom, core, namespace):
    key = f"gone-while-down-{namespace}"
    _source(core, namespace, "gone-while-down", key)
    create(custom, "ServiceToken", namespace, "orphaned", {
        "roles": ["reader"], "import": {"secretRef": {"name": "gone-while-down"}}})
    # A source that lost its label after its key was imported: never in a listing of labelled
    # sources, yet not gone.
    _source(core, namespace, "unlabelled", f"unlabelled-key-{namespace}")
    create(custom, "ServiceToken", namespace, "kept", {
        "roles": ["reader"], "import": {"secretRef": {"name": "unlabelled"}}})
    for name in ("orphaned", "kept"):
        wait_for(custom, "ServiceToken", namespace, name, phase_is("Active"))
    core.patch_namespaced_secret("unlabelled", namespace, {"metadata": {"labels": {"tokenwarden.io/importable": None}}})

    operator.stop()
    try:
        core.delete_namespaced_secret("gone-while-down", namespace)
    finally:
        operator.start()
    wait_for_event(core, namespace, "orphaned", "ImportSourceDeleted", contains="stays valid", timeout=60)
    assert get(custom, "ServiceToken", namespace, "orphaned")["status"]["phase"] == "Active"
    assert _eventually(lambda: authenticator.get("/verify", {"X-API-Key": key}).status_code == 200)
    # Both were looked at after the same listing: the one still there is not reported.
    reasons = {e.reason for e in core.list_namespaced_event(namespace, field_selector="involvedObject.name=kept").items}
    assert "ImportSourceDeleted" not in reasons
    assert get(custom, "ServiceToken", namespace, "kept")["status"]["phase"] == "Active"


def test_missing_source_waits_then_imports(operator, custom, core, namespace):
    create(custom, "ServiceToken", namespace, "later", {
        "roles": ["reader"], "import": {"secretRef": {"name": "not-yet", "key": "apikey"}}})
    waiting = wait_for(custom, "ServiceToken", namespace, "later", phase_is("Pending"))
    assert ready_reason(waiting) == "ImportSourceNotFound"
    _source(core, namespace, "not-yet", "arrived-later-0123456789", key="apikey")
    wait_for(custom, "ServiceToken", namespace, "later", phase_is("Active"))


BAD_SOURCES = [
    ("too-short", {"token": b"tiny"}, "token", "ImportTooShort", "at least 16"),
    ("wrong-key", {"password": b"long-enough-but-wrong-key"}, "token", "ImportKeyMissing", "its keys: password"),
    ("empty", {"token": b""}, "token", "ImportKeyEmpty", "is empty"),
    ("spaces", {"token": b"two words-0123456789"}, "token", "ImportKeyMalformed", "without spaces"),
    ("binary", {"token": b"\xff\xfe\x00-binary-0123456789"}, "token", "ImportKeyMalformed", "printable ASCII"),
]


def test_bad_sources_are_marked_with_a_reason_and_fixed_by_fixing_the_source(operator, custom, core, namespace):
    for name, data, key, _, _ in BAD_SOURCES:
        core.create_namespaced_secret(namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, labels=IMPORTABLE),
            data={k: base64.b64encode(v).decode() for k, v in data.items()}))
        create(custom, "ServiceToken", namespace, name, {"roles": ["reader"],
                                                         "import": {"secretRef": {"name": name, "key": key}}})
    for name, _, _, reason, words in BAD_SOURCES:
        marked = wait_for(custom, "ServiceToken", namespace, name, phase_is("Failed"))
        assert ready_reason(marked) == reason
        assert words in marked["status"]["conditions"][0]["message"]
        assert "tokenHash" not in marked["status"]
    # Putting a usable key into the source is all it takes.
    core.patch_namespaced_secret("empty", namespace, {"data": {"token": base64.b64encode(b"now-filled-0123456789")
                                                               .decode()}})
    fixed = wait_for(custom, "ServiceToken", namespace, "empty", phase_is("Active"))
    assert fixed["status"]["tokenHash"] == _kept(core, "now-filled-0123456789")


def test_the_same_key_imported_twice_is_refused_for_the_second(operator, custom, core, namespace):
    _source(core, namespace, "shared", "the-same-key-0123456789")
    create(custom, "ServiceToken", namespace, "first", {"roles": ["reader"],
                                                          "import": {"secretRef": {"name": "shared"}}})
    wait_for(custom, "ServiceToken", namespace, "first", phase_is("Active"))
    create(custom, "ServiceToken", namespace, "second", {"roles": ["reader"],
                                                           "import": {"secretRef": {"name": "shared"}}})
    second = wait_for(custom, "ServiceToken", namespace, "second", phase_is("Failed"))
    assert ready_reason(second) == "DuplicateImport"
    assert f"{namespace}/first" in second["status"]["conditions"][0]["message"]


def test_one_key_adopted_by_several_tokens_at_once_has_one_holder(operator, custom, core, namespace):
    _source(core, namespace, "contested", "the-contested-key-0123456789")
    names = [f"rival-{i}" for i in range(4)]
    threads = [threading.Thread(target=create, args=(custom, "ServiceToken", namespace, name, {
        "roles": ["reader"], "import": {"secretRef": {"name": "contested"}}})) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    settled = {name: wait_for(custom, "ServiceToken", namespace, name, phase_is("Active", "Failed"))
               for name in names}
    active = [name for name, token in settled.items() if token["status"]["phase"] == "Active"]
    assert len(active) == 1, {n: ready_reason(t) for n, t in settled.items()}
    for name, token in settled.items():
        if name != active[0]:
            assert ready_reason(token) == "DuplicateImport"
            assert f"{namespace}/{active[0]}" in token["status"]["conditions"][0]["message"]


def test_a_token_is_either_minted_or_imported_for_life(operator, custom, core, namespace):
    _source(core, namespace, "legacy", "a-legacy-key-0123456789")
    create(custom, "ServiceToken", namespace, "minted", {"roles": ["reader"]})
    create(custom, "ServiceToken", namespace, "adopted", {"roles": ["reader"],
                                                            "import": {"secretRef": {"name": "legacy"}}})
    for name in ("minted", "adopted"):
        wait_for(custom, "ServiceToken", namespace, name, phase_is("Active"))
    for name, change in (("minted", {"spec": {"import": {"secretRef": {"name": "legacy"}}}}),
                         ("adopted", {"spec": {"import": None}})):
        with pytest.raises(client.ApiException) as refused:
            custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", name, change)
        assert refused.value.status == 422 and "cannot be added or removed" in refused.value.body
    # Pointing an imported token at another Secret is allowed: that is how its owner rotates it.
    _source(core, namespace, "legacy-2", "the-next-legacy-key-0123456789")
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", "adopted",
                                          {"spec": {"import": {"secretRef": {"name": "legacy-2"}}}})
    wait_for(custom, "ServiceToken", namespace, "adopted",
             lambda o: o["status"].get("tokenHash") == _kept(core, "the-next-legacy-key-0123456789"))


def test_only_a_secret_labelled_importable_is_imported(operator, authenticator, custom, core, namespace):
    key = f"unlabelled-key-{namespace}"
    _source(core, namespace, "team-secret", key, labels=None)
    create(custom, "ServiceToken", namespace, "reader", {
        "roles": ["reader"], "import": {"secretRef": {"name": "team-secret"}}})
    waiting = wait_for(custom, "ServiceToken", namespace, "reader", phase_is("Pending"))
    assert ready_reason(waiting) == "SourceNotImportable"
    message = waiting["status"]["conditions"][0]["message"]
    assert f"kubectl label secret team-secret -n {namespace} tokenwarden.io/importable=true" in message
    assert "tokenHash" not in waiting["status"] and key not in str(waiting)
    wait_for_event(core, namespace, "reader", "SourceNotImportable", contains="kubectl label secret team-secret")
    assert authenticator.get("/verify", {"X-API-Key": key}).status_code == 401

    # Its owner opts the Secret in: the key is imported, with no change to the token.
    core.patch_namespaced_secret("team-secret", namespace, {"metadata": {"labels": IMPORTABLE}})
    token = wait_for(custom, "ServiceToken", namespace, "reader", phase_is("Active"))
    assert token["status"]["tokenHash"] == _kept(core, key)
    assert _eventually(lambda: authenticator.get("/verify?permission=read", {"X-API-Key": key}).status_code == 200)

    # The label taken away: the key imported stays valid, a new value is not taken until it is back.
    core.patch_namespaced_secret("team-secret", namespace, {
        "metadata": {"labels": {"tokenwarden.io/importable": None}},
        "data": {"token": base64.b64encode(f"next-{key}".encode()).decode()}})
    wait_for_event(core, namespace, "reader", "SourceNotImportable", contains="stays valid until the label")
    assert get(custom, "ServiceToken", namespace, "reader")["status"]["tokenHash"] == _kept(core, key)
    assert authenticator.get("/verify", {"X-API-Key": key}).status_code == 200
    core.patch_namespaced_secret("team-secret", namespace, {"metadata": {"labels": IMPORTABLE}})
    wait_for(custom, "ServiceToken", namespace, "reader",
             lambda o: o["status"].get("tokenHash") == _kept(core, f"next-{key}"))
    assert _eventually(lambda: authenticator.get("/verify", {"X-API-Key": f"next-{key}"}).status_code == 200)


def test_the_import_key_lives_in_the_operators_namespace(operator, custom, core, namespace):
    _source(core, namespace, "keyed", "keyed-value-0123456789")
    create(custom, "ServiceToken", namespace, "keyed", {"roles": ["reader"],
                                                          "import": {"secretRef": {"name": "keyed"}}})
    wait_for(custom, "ServiceToken", namespace, "keyed", phase_is("Active"))
    secret = core.read_namespaced_secret(IMPORT_KEY_SECRET, OPERATOR_NAMESPACE)
    assert len(base64.b64decode(secret.data["key"])) == 32
    assert secret.metadata.labels["app.kubernetes.io/managed-by"] == "tokenwarden"
    # Minted tokens need no key: 256 random bits are no guessing oracle.
    create(custom, "ServiceToken", namespace, "minted", {"roles": ["reader"]})
    minted = wait_for(custom, "ServiceToken", namespace, "minted", phase_is("Active"))
    assert minted["status"]["tokenHash"].startswith("sha256:")


def test_an_import_kept_as_a_bare_sha256_is_rehashed_on_its_next_reconcile(
        operator, authenticator, custom, core, namespace):
    value = f"kept-before-hmac-{namespace}"
    _source(core, namespace, "older", value)
    create(custom, "ServiceToken", namespace, "older", {"roles": ["reader"],
                                                          "import": {"secretRef": {"name": "older"}}})
    before = wait_for(custom, "ServiceToken", namespace, "older", phase_is("Active"))
    # As an operator of an earlier version left it.
    custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, "servicetokens", "older",
                                                 {"status": {"tokenHash": _sha(value)}})
    assert _eventually(lambda: authenticator.get("/verify", {"X-API-Key": value}).status_code == 200)
    # Anything that brings the token back to the operator re-hashes it; its issue date stays.
    core.patch_namespaced_secret("older", namespace, {"metadata": {"annotations": {"touched": "yes"}}})
    after = wait_for(custom, "ServiceToken", namespace, "older",
                     lambda o: o["status"].get("tokenHash") == _kept(core, value))
    assert after["status"]["issuedAt"] == before["status"]["issuedAt"]
    wait_for_event(core, namespace, "older", "ImportRehashed")
    assert _eventually(lambda: authenticator.get("/verify", {"X-API-Key": value}).status_code == 200)


def test_an_authenticator_takes_up_the_import_key_when_its_secret_appears(
        cluster, operator, custom, core, namespace, tmp_path):
    """An authenticator reads the key by name, and watches that one Secret: started before the
    Secret exists, it refuses imported keys, and accepts them once the Secret is there."""
    value = f"watched-key-{namespace}"
    _source(core, namespace, "watched", value)
    create(custom, "ServiceToken", namespace, "watched", {"roles": ["reader"],
                                                            "import": {"secretRef": {"name": "watched"}}})
    wait_for(custom, "ServiceToken", namespace, "watched", phase_is("Active"))
    settings = tmp_path / "late-key.yaml"
    settings.write_text(TEST_SETTINGS.replace(f"  namespace: {OPERATOR_NAMESPACE}",
                                              f"  namespace: {namespace}\n  secretName: late-key"))
    late = AuthenticatorProcess(cluster, tmp_path, port=devcluster.free_port(), extra=("--config", str(settings)))
    try:
        assert late.get("/verify", {"X-API-Key": value}).status_code == 401
        core.create_namespaced_secret(namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name="late-key"),
            data={"key": base64.b64encode(_import_key(core)).decode()}))
        assert _eventually(lambda: late.get("/verify", {"X-API-Key": value}).status_code == 200)
        assert "import key loaded" in late.log() and value not in late.log()
    finally:
        late.stop()
