"""Adopting existing keys: only the hash is kept, the source is never touched."""
from __future__ import annotations

import base64
import hashlib

from kubernetes import client

from .test_authenticator import _eventually
from .kubehelpers import create, phase_is, ready_reason, wait_for, wait_for_event

GRAFANA_KEY = "glsa_Qm9ndXNLZXlGb3JUZXN0aW5nT25seQ_1a2b3c4d"


def _source(core, namespace, name, value, key="token"):
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name=name), data={key: base64.b64encode(value.encode()).decode()}))


def _sha(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def test_imported_key_keeps_its_value_and_only_its_hash_is_stored(operator, authenticator, custom, core, namespace):
    _source(core, namespace, "legacy-key", GRAFANA_KEY)
    before = core.read_namespaced_secret("legacy-key", namespace)
    create(custom, "ServiceToken", namespace, "legacy", {
        "roles": ["writer"], "secretName": "legacy-copy",
        "import": {"secretRef": {"name": "legacy-key"}}})
    token = wait_for(custom, "ServiceToken", namespace, "legacy", phase_is("Active"))
    assert token["status"]["tokenHash"] == _sha(GRAFANA_KEY)
    assert token["status"]["imported"] is True
    copy = core.read_namespaced_secret("legacy-copy", namespace)
    assert base64.b64decode(copy.data["token"]).decode() == GRAFANA_KEY
    after = core.read_namespaced_secret("legacy-key", namespace)
    assert after.metadata.resource_version == before.metadata.resource_version
    assert not after.metadata.owner_references
    assert GRAFANA_KEY not in str(token) and GRAFANA_KEY not in operator.log()

    # A foreign format goes straight to the hash lookup (no checksum rejection).
    headers = {"Authorization": f"Bearer {GRAFANA_KEY}"}
    assert _eventually(lambda: authenticator.get("/verify?permission=write", headers).status_code == 200)

    # Deleting the token leaves the user's Secret alone.
    custom.delete_namespaced_custom_object("tokenwarden.io", "v1alpha1", namespace, "servicetokens", "legacy")
    assert core.read_namespaced_secret("legacy-key", namespace).data == before.data


def test_changed_source_is_rehashed(operator, custom, core, namespace):
    _source(core, namespace, "rotating", "first-value-0123456789")
    create(custom, "ServiceToken", namespace, "rotating", {
        "roles": ["reader"], "import": {"secretRef": {"name": "rotating"}}})
    wait_for(custom, "ServiceToken", namespace, "rotating", phase_is("Active"))
    core.patch_namespaced_secret("rotating", namespace, {
        "data": {"token": base64.b64encode(b"second-value-0123456789").decode()}})
    wait_for(custom, "ServiceToken", namespace, "rotating",
             lambda o: o["status"].get("tokenHash") == _sha("second-value-0123456789"))
    wait_for_event(core, namespace, "rotating", "ImportedKeyChanged")


def test_missing_source_waits_then_imports(operator, custom, core, namespace):
    create(custom, "ServiceToken", namespace, "later", {
        "roles": ["reader"], "import": {"secretRef": {"name": "not-yet", "key": "apikey"}}})
    waiting = wait_for(custom, "ServiceToken", namespace, "later", phase_is("Pending"))
    assert ready_reason(waiting) == "ImportSourceNotFound"
    _source(core, namespace, "not-yet", "arrived-later-0123456789", key="apikey")
    wait_for(custom, "ServiceToken", namespace, "later", phase_is("Active"))


def test_bad_sources_are_marked_with_a_reason(operator, custom, core, namespace):
    _source(core, namespace, "short", "tiny")
    _source(core, namespace, "other-key", "long-enough-but-wrong-key", key="password")
    create(custom, "ServiceToken", namespace, "too-short", {
        "roles": ["reader"], "import": {"secretRef": {"name": "short"}}})
    create(custom, "ServiceToken", namespace, "wrong-key", {
        "roles": ["reader"], "import": {"secretRef": {"name": "other-key"}}})
    short = wait_for(custom, "ServiceToken", namespace, "too-short", phase_is("Failed"))
    assert ready_reason(short) == "ImportTooShort" and "at least 16" in short["status"]["conditions"][0]["message"]
    wrong = wait_for(custom, "ServiceToken", namespace, "wrong-key", phase_is("Failed"))
    assert ready_reason(wrong) == "ImportKeyMissing"


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
