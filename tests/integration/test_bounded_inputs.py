"""A tokenwarden.io/rotate value longer than the status can hold (253 characters): admission
refuses it, naming the limit and the fix; one that got past it while admission was away is
answered once on the token, and nothing is minted for it, nor written again and again."""
from __future__ import annotations

import base64

import pytest
from kubernetes.client.rest import ApiException

from .kubehelpers import GROUP, VERSION, create, phase_is, wait_for
from .test_import import _source

LONG = "x" * 300


def _annotate(custom, namespace, plural, name, value):
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name,
                                          {"metadata": {"annotations": {"tokenwarden.io/rotate": value}}})


def _answered(reason):
    def answered(token):
        return any(c["type"] == "RotationRequest" and c["status"] == "False" and c["reason"] == reason
                   for c in (token.get("status") or {}).get("conditions") or [])
    return answered


def _secret(core, namespace, name) -> dict:
    data = core.read_namespaced_secret(name, namespace).data
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def test_a_rotate_value_too_long_is_refused_and_one_let_through_mints_nothing(operator, custom, core, namespace):
    create(custom, "ServiceToken", namespace, "bounded", {"roles": ["reader"], "ttl": "1h"})
    before = wait_for(custom, "ServiceToken", namespace, "bounded", phase_is("Active"))["status"]
    original = _secret(core, namespace, before.get("secretName") or "bounded")["token"]

    with pytest.raises(ApiException) as refused:
        _annotate(custom, namespace, "servicetokens", "bounded", LONG)
    assert refused.value.status == 422
    assert "300 characters, longer than the 253 allowed: set a shorter value" in refused.value.body

    operator.stop()
    try:
        _annotate(custom, namespace, "servicetokens", "bounded", LONG)  # admission is away
    finally:
        operator.start()
    token = wait_for(custom, "ServiceToken", namespace, "bounded", _answered("RotationRequestTooLong"))
    status = token["status"]
    assert status["rotationRequest"].startswith("sha256:")
    assert status["tokenHash"] == before["tokenHash"] and status["phase"] == "Active"
    assert _secret(core, namespace, status.get("secretName") or "bounded")["token"] == original

    # A valid request afterwards rotates once: the token it replaces is still the original one,
    # so nothing was minted (and lost) for the value refused.
    _annotate(custom, namespace, "servicetokens", "bounded", "r2")
    rotated = wait_for(custom, "ServiceToken", namespace, "bounded",
                       lambda t: (t.get("status") or {}).get("rotationRequest") == "r2")["status"]
    assert rotated["tokenHash"] != before["tokenHash"]
    assert _secret(core, namespace, rotated.get("secretName") or "bounded").get("token.previous") == original
    assert not any(c["type"] == "RotationRequest" for c in rotated.get("conditions") or [])


def test_an_imported_keys_rotate_value_too_long_is_answered_once(operator, custom, core, namespace):
    _source(core, namespace, "owned-key", "imported-key-value-5c1e9a7d3b2f")
    create(custom, "ServiceToken", namespace, "imported",
           {"roles": ["reader"], "import": {"secretRef": {"name": "owned-key"}}})
    before = wait_for(custom, "ServiceToken", namespace, "imported", phase_is("Active"))["status"]

    operator.stop()
    try:
        _annotate(custom, namespace, "servicetokens", "imported", LONG)  # admission is away
    finally:
        operator.start()
    status = wait_for(custom, "ServiceToken", namespace, "imported", _answered("RotationRequestTooLong"))["status"]
    assert status["rotationRequest"].startswith("sha256:")
    assert status["tokenHash"] == before["tokenHash"]

    # And a request of a valid length is answered as before: an imported key is its owner's to rotate.
    _annotate(custom, namespace, "servicetokens", "imported", "r2")
    status = wait_for(custom, "ServiceToken", namespace, "imported",
                      lambda t: (t.get("status") or {}).get("rotationRequest") == "r2")["status"]
    assert _answered("RotationUnsupported")({"status": status})
    assert status["tokenHash"] == before["tokenHash"]
