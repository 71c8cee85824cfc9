"""Quotas and edits the model refuses, against the real API server, also when they got past
admission: the test operator serves its webhook with failure policy Ignore, so while it is
stopped the API server admits whatever its schema allows, as a cluster whose webhook is away
does. The test operator allows 3 accounts per namespace and 3 tokens per account."""
from __future__ import annotations

import base64
import time
from datetime import datetime

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from .kubehelpers import GROUP, PLURALS, VERSION, create, get, phase_is, ready_reason, wait_for, wait_for_event


def _bound_account(custom, namespace: str, account: str = "busy") -> None:
    create(custom, "ServiceAccount", namespace, account, {})
    create(custom, "RoleBinding", namespace, f"{account}-reader", {"serviceAccountName": account, "roles": ["reader"]})


def _minted(custom, namespace: str, names, account: str = "busy") -> None:
    for name in names:
        create(custom, "ServiceToken", namespace, name, {"serviceAccountName": account})
    for name in names:
        wait_for(custom, "ServiceToken", namespace, name, phase_is("Active"))


def _reason_is(reason: str):
    return lambda obj: ready_reason(obj) == reason


def _no_secret(core, namespace: str, name: str) -> bool:
    try:
        core.read_namespaced_secret(name, namespace)
    except ApiException as exc:
        return exc.status == 404
    return False


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def _past_admission(operator, create_them) -> None:
    """Create objects while no webhook answers (failure policy Ignore), then start the operator."""
    operator.stop()
    try:
        create_them()
    finally:
        operator.start()


def test_failed_tokens_do_not_count(operator, custom, core, namespace):
    _bound_account(custom, namespace)
    _minted(custom, namespace, ["busy-0", "busy-1"])
    core.create_namespaced_secret(namespace, client.V1Secret(metadata=client.V1ObjectMeta(name="taken"),
                                                             data={"token": base64.b64encode(b"x").decode()}))
    create(custom, "ServiceToken", namespace, "conflicted", {"serviceAccountName": "busy", "secretName": "taken"})
    wait_for(custom, "ServiceToken", namespace, "conflicted", phase_is("Failed"))

    # Two that verify and one that never will: room for a third, at admission and in the operator.
    create(custom, "ServiceToken", namespace, "busy-2", {"serviceAccountName": "busy"})
    wait_for(custom, "ServiceToken", namespace, "busy-2", phase_is("Active"))
    with pytest.raises(ApiException) as refused:
        create(custom, "ServiceToken", namespace, "busy-3", {"serviceAccountName": "busy"})
    assert refused.value.status == 422
    assert "at most 3" in refused.value.body and "do not count" in refused.value.body


def test_expired_tokens_do_not_count(operator, custom, namespace):
    _bound_account(custom, namespace)
    _minted(custom, namespace, ["busy-0", "busy-1"])
    create(custom, "ServiceToken", namespace, "brief", {"serviceAccountName": "busy", "ttl": "2s"})
    # Expired, and still there for a moment (the test operator deletes expired tokens 4 s after
    # their expiry): it no longer verifies, so it leaves room for a third.
    wait_for(custom, "ServiceToken", namespace, "brief", phase_is("Expired"))
    create(custom, "ServiceToken", namespace, "busy-2", {"serviceAccountName": "busy"})
    wait_for(custom, "ServiceToken", namespace, "busy-2", phase_is("Active"))


def test_a_token_over_quota_waits_and_is_minted_once_another_is_deleted(operator, custom, core, namespace):
    _bound_account(custom, namespace)
    _minted(custom, namespace, ["busy-0", "busy-1", "busy-2"])
    _past_admission(operator, lambda: [create(custom, "ServiceToken", namespace, name, {"serviceAccountName": "busy"})
                                       for name in ("late", "later")])

    late = wait_for(custom, "ServiceToken", namespace, "late", _reason_is("QuotaExceeded"))
    later = wait_for(custom, "ServiceToken", namespace, "later", _reason_is("QuotaExceeded"))
    message = late["status"]["conditions"][-1]["message"]
    assert late["status"]["phase"] == later["status"]["phase"] == "Pending"
    assert "at most 3" in message and "maxTokensPerAccount" in message and "delete one" in message
    assert "tokenHash" not in late["status"] and _no_secret(core, namespace, "late")
    wait_for_event(core, namespace, "late", "QuotaExceeded")

    # One place freed: the first created of the waiting tokens takes it, the other waits on.
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS["ServiceToken"], "busy-0")
    wait_for(custom, "ServiceToken", namespace, "late", phase_is("Active"))
    assert core.read_namespaced_secret("late", namespace).data["token"]
    later = get(custom, "ServiceToken", namespace, "later")
    assert later["status"]["phase"] == "Pending" and ready_reason(later) == "QuotaExceeded"
    assert _no_secret(core, namespace, "later")

    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS["ServiceToken"], "busy-1")
    wait_for(custom, "ServiceToken", namespace, "later", phase_is("Active"))


def _verifies(authenticator, token: str, expected: int = 200, timeout: float = 15.0) -> bool:
    """The authenticator learns of a token through its watch: allow it a moment."""
    deadline = time.monotonic() + timeout
    while authenticator.get("/verify", {"Authorization": f"Bearer {token}"}).status_code != expected:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_an_invalid_edit_that_got_past_admission_leaves_the_token_active(operator, authenticator, custom, core,
                                                                         namespace):
    create(custom, "ServiceToken", namespace, "steady", {"roles": ["reader"], "ttl": "24h"})
    before = wait_for(custom, "ServiceToken", namespace, "steady", phase_is("Active"))
    token = base64.b64decode(core.read_namespaced_secret("steady", namespace).data["token"]).decode()
    assert _verifies(authenticator, token)

    # The schema cannot compare two durations; the model refuses it, at admission when it answers.
    edit = {"spec": {"rotation": {"renewBefore": "48h"}}}
    with pytest.raises(ApiException) as refused:
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS["ServiceToken"], "steady", edit)
    assert refused.value.status == 422 and "renewBefore must be shorter than ttl" in refused.value.body

    _past_admission(operator, lambda: custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURALS["ServiceToken"], "steady", edit))
    after = wait_for(custom, "ServiceToken", namespace, "steady", _reason_is("InvalidSpec"))
    condition = after["status"]["conditions"][-1]
    assert after["status"]["phase"] == "Active"
    assert after["status"]["tokenHash"] == before["status"]["tokenHash"]
    assert after["status"]["observedGeneration"] == before["status"]["observedGeneration"]
    assert condition["status"] == "False" and condition["observedGeneration"] == after["metadata"]["generation"]
    assert "was not applied" in condition["message"] and "renewBefore must be shorter than ttl" in condition["message"]
    assert _verifies(authenticator, token)
    assert base64.b64decode(core.read_namespaced_secret("steady", namespace).data["token"]).decode() == token

    # Corrected: applied, and the same token goes on.
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS["ServiceToken"], "steady",
                                          {"spec": {"rotation": {"renewBefore": "1h"}}})
    fixed = wait_for(custom, "ServiceToken", namespace, "steady", _reason_is("Minted"))
    assert fixed["status"]["tokenHash"] == before["status"]["tokenHash"]
    assert fixed["status"]["observedGeneration"] == fixed["metadata"]["generation"]


def test_a_token_with_an_edit_not_applied_is_still_rotated_on_request_and_revoked(operator, authenticator, custom,
                                                                                 core, namespace):
    _bound_account(custom, namespace, "held")
    create(custom, "ServiceToken", namespace, "held-0", {"serviceAccountName": "held", "ttl": "24h"})
    before = wait_for(custom, "ServiceToken", namespace, "held-0", phase_is("Active"))
    old = base64.b64decode(core.read_namespaced_secret("held-0", namespace).data["token"]).decode()
    _past_admission(operator, lambda: custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURALS["ServiceToken"], "held-0", {"spec": {"rotation": {"renewBefore": "48h"}}}))
    wait_for(custom, "ServiceToken", namespace, "held-0", _reason_is("InvalidSpec"))

    # A rotation asked for is acted on: the successor lives as long as the token was minted
    # to, and Ready goes on saying the edit was not applied.
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS["ServiceToken"], "held-0",
                                          {"metadata": {"annotations": {"tokenwarden.io/rotate": "now"}}})
    rotated = wait_for(custom, "ServiceToken", namespace, "held-0",
                       lambda t: (t.get("status") or {}).get("rotationRequest") == "now")
    status = rotated["status"]
    assert status["tokenHash"] != before["status"]["tokenHash"] and status["previousTokenHash"] == \
        before["status"]["tokenHash"]
    assert ready_reason(rotated) == "InvalidSpec" and status["observedGeneration"] == \
        before["status"]["observedGeneration"]
    lifetime = (_parse(status["expiresAt"]) - _parse(status["issuedAt"])).total_seconds()
    assert lifetime == 24 * 3600, f"the successor lives {lifetime} s, not the 24h it was minted with"
    new = base64.b64decode(core.read_namespaced_secret("held-0", namespace).data["token"]).decode()
    assert new != old and _verifies(authenticator, new) and _verifies(authenticator, old)

    # Its account deleted: revoked, edit or no edit.
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS["ServiceAccount"], "held")
    wait_for(custom, "ServiceToken", namespace, "held-0", phase_is("Revoked"))
    assert _verifies(authenticator, new, expected=401)


def test_an_invalid_spec_never_minted_fails_with_the_reason(operator, custom, namespace):
    def create_invalid():
        create(custom, "ServiceToken", namespace, "never", {"roles": ["reader"], "ttl": "1h",
                                                            "rotation": {"renewBefore": "1h"}})

    _past_admission(operator, create_invalid)
    failed = wait_for(custom, "ServiceToken", namespace, "never", phase_is("Failed"))
    assert ready_reason(failed) == "InvalidSpec" and "tokenHash" not in failed["status"]


def test_an_account_over_quota_gets_no_tokens_until_it_is_within(operator, custom, core, namespace):
    for i in range(3):
        create(custom, "ServiceAccount", namespace, f"acct-{i}", {})
    _past_admission(operator, lambda: (_bound_account(custom, namespace, "extra"),
                                       create(custom, "ServiceToken", namespace, "extra-token",
                                              {"serviceAccountName": "extra"})))

    extra = wait_for(custom, "ServiceAccount", namespace, "extra", _reason_is("QuotaExceeded"))
    assert "maxAccountsPerNamespace" in extra["status"]["conditions"][-1]["message"]
    waiting = wait_for(custom, "ServiceToken", namespace, "extra-token", _reason_is("AccountQuotaExceeded"))
    assert waiting["status"]["phase"] == "Pending" and "tokenHash" not in waiting["status"]
    assert _no_secret(core, namespace, "extra-token")
    for i in range(3):  # the accounts created first stay within the quota
        wait_for(custom, "ServiceAccount", namespace, f"acct-{i}", _reason_is("Ready"))

    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS["ServiceAccount"], "acct-0")
    wait_for(custom, "ServiceAccount", namespace, "extra", _reason_is("Ready"))
    wait_for(custom, "ServiceToken", namespace, "extra-token", phase_is("Active"))
