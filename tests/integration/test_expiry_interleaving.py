"""A rotation lands within milliseconds of a token's expiry, in another replica: whichever
order the two writes come in, an expired token never comes back to Active, and a successor
is never expired early.

Each test stages one interleaving exactly. Two replicas' handlers run in this process against
the real API server (the operator process is stopped meanwhile, so nothing else writes), each
with its own memo and its own token locks, as two processes would have; the clock both read
is moved to a millisecond before or after the token's expiresAt as each one decides.
"""
from __future__ import annotations

import base64
from datetime import timedelta

import kopf
import pytest
from kubernetes.client.rest import ApiException

from tokenwarden import clock, policies
from tokenwarden.handlers._expiry import expire_token
from tokenwarden.handlers._rotation import ROTATE_ANNOTATION, rotate_token
from tokenwarden.handlers._token_kinds import SERVICE_TOKEN
from tokenwarden.tokens import hash_token

from .inprocess import LOG, no_events, operator_memo  # noqa: F401  (fixtures)
from .kubehelpers import create, get, phase_is, wait_for

MS = timedelta(milliseconds=1)


class Clock:
    """The handlers' clock, set by the test to the instant each replica decides at."""

    def __init__(self, monkeypatch, at) -> None:
        self.at = at
        monkeypatch.setattr(clock, "now", lambda: self.at)


class Hooked:
    """An API client of one replica, except that its first call of ``method`` on the token
    runs ``step`` (what the other replica does meanwhile) before (``before=True``) or after
    the call itself."""

    def __init__(self, api, method: str, step, before: bool) -> None:
        self._api, self._method, self._step, self._before = api, method, step, before
        self.ran = False

    def __getattr__(self, name):
        attribute = getattr(self._api, name)
        if name != self._method:
            return attribute

        def hooked(*args, **kwargs):
            if self.ran:
                return attribute(*args, **kwargs)
            self.ran = True
            if self._before:
                self._step()
                return attribute(*args, **kwargs)
            answer = attribute(*args, **kwargs)
            self._step()
            return answer

        return hooked


@pytest.fixture
def due_for_rotation(operator, custom, namespace):
    """An Active token with a rotation requested and not acted on yet; the operator process
    stopped (and started again afterwards), so that only the replicas staged here write."""
    create(custom, "ServiceToken", namespace, "racing", {"roles": ["reader"], "ttl": "1h"})
    token = wait_for(custom, "ServiceToken", namespace, "racing", phase_is("Active"))
    operator.stop()
    custom.patch_namespaced_custom_object(
        "tokenwarden.io", "v1alpha1", namespace, "servicetokens", "racing",
        {"metadata": {"annotations": {ROTATE_ANNOTATION: "now"}}})
    yield token
    operator.start()


def _secret_token(core, namespace, name) -> str | None:
    try:
        secret = core.read_namespaced_secret(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return base64.b64decode(secret.data["token"]).decode()


def test_an_expiry_decided_before_a_rotation_landed_leaves_the_successor_active(
        api_client, custom, core, namespace, due_for_rotation, monkeypatch, no_events):
    """Replica E reads the token a millisecond after its expiresAt; before E writes, replica R
    rotates it (R's clock a millisecond before expiry). E's write must not expire R's
    successor, nor delete the Secret holding it."""
    expires_at = policies.parse_time(due_for_rotation["status"]["expiresAt"])
    now = Clock(monkeypatch, expires_at + MS)
    rotating, expiring = operator_memo(api_client), operator_memo(api_client)

    def rotation_lands():
        now.at = expires_at - MS
        assert rotate_token(SERVICE_TOKEN, namespace, "racing", rotating, LOG)
        now.at = expires_at + MS

    expiring.custom = Hooked(expiring.custom, "get_namespaced_custom_object", rotation_lands, before=False)
    expired = expire_token(SERVICE_TOKEN, namespace, "racing", expiring, LOG)

    assert expiring.custom.ran, "the expiry never read the token"
    assert expired is False, "the expiry went ahead on what it read before the rotation"
    status = get(custom, "ServiceToken", namespace, "racing")["status"]
    assert status["phase"] == "Active", "a successor minted a millisecond before expiry was expired"
    assert policies.parse_time(status["expiresAt"]) > expires_at
    successor = _secret_token(core, namespace, status.get("secretName") or "racing")
    assert successor is not None, "the successor's Secret was deleted"
    assert hash_token(successor) == status["tokenHash"] != due_for_rotation["status"]["tokenHash"]


def test_a_rotation_that_an_expiry_overtook_never_turns_the_token_back_to_active(
        api_client, custom, core, namespace, due_for_rotation, monkeypatch, no_events):
    """Replica R decides to rotate a millisecond before expiry and writes the successor into
    the Secret; before R writes the status, replica E expires the token (a millisecond after)
    and deletes its Secret. R's status write must fail, and R deciding again does nothing:
    the token stays Expired, with no Secret."""
    expires_at = policies.parse_time(due_for_rotation["status"]["expiresAt"])
    now = Clock(monkeypatch, expires_at - MS)
    rotating, expiring = operator_memo(api_client), operator_memo(api_client)

    def expiry_lands():
        now.at = expires_at + MS
        assert expire_token(SERVICE_TOKEN, namespace, "racing", expiring, LOG)
        now.at = expires_at - MS

    rotating.custom = Hooked(rotating.custom, "patch_namespaced_custom_object_status", expiry_lands, before=True)
    with pytest.raises(kopf.TemporaryError):
        rotate_token(SERVICE_TOKEN, namespace, "racing", rotating, LOG)
    assert rotating.custom.ran, "the rotation never wrote its status"
    # The work queue runs it again: decided on what is there now.
    assert rotate_token(SERVICE_TOKEN, namespace, "racing", rotating, LOG) is False

    status = get(custom, "ServiceToken", namespace, "racing")["status"]
    assert status["phase"] == "Expired", "the rotation turned an expired token back to Active"
    assert status["tokenHash"] == due_for_rotation["status"]["tokenHash"]
    assert _secret_token(core, namespace, status.get("secretName") or "racing") is None


def test_an_expiry_that_comes_after_a_recorded_rotation_waits_for_the_successors_instant(
        api_client, custom, core, namespace, due_for_rotation, monkeypatch, no_events):
    """The plain order: R rotates a millisecond before expiry, and E, woken at the old
    instant on the body it had, decides on a fresh read and leaves the successor alone."""
    expires_at = policies.parse_time(due_for_rotation["status"]["expiresAt"])
    now = Clock(monkeypatch, expires_at - MS)
    rotating, expiring = operator_memo(api_client), operator_memo(api_client)
    assert rotate_token(SERVICE_TOKEN, namespace, "racing", rotating, LOG)
    now.at = expires_at + MS
    assert expire_token(SERVICE_TOKEN, namespace, "racing", expiring, LOG) is False
    status = get(custom, "ServiceToken", namespace, "racing")["status"]
    assert status["phase"] == "Active"
    assert _secret_token(core, namespace, status.get("secretName") or "racing") is not None
    # At the successor's own instant, it expires.
    now.at = policies.parse_time(status["expiresAt"]) + MS
    assert expire_token(SERVICE_TOKEN, namespace, "racing", expiring, LOG) is True
    assert get(custom, "ServiceToken", namespace, "racing")["status"]["phase"] == "Expired"
    assert _secret_token(core, namespace, status.get("secretName") or "racing") is None
