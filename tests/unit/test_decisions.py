"""Decisions recomputed from a token's current state: rotate now, revoke, re-mint, end the overlap."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tokenwarden import policies

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)


def _reason(action):
    return action.reason if action else None


@pytest.mark.parametrize("phase, expires_in, renew_before, asked, handled, imported, expected", [
    ("Active", 2 * HOUR, HOUR, None, None, False, None),  # not yet
    ("Active", HOUR, HOUR, None, None, False, "RenewBeforeExpiry"),  # the very instant
    ("Active", 30 * 60, HOUR, None, None, False, "RenewBeforeExpiry"),
    ("Active", 2 * HOUR, None, None, None, False, None),  # no spec.rotation
    ("Active", None, HOUR, None, None, False, None),  # never expires: nothing to renew before
    ("Active", -HOUR, HOUR, None, None, False, None),  # expired: the expiry's, never renewed
    ("Active", -HOUR, HOUR, "r1", None, False, None),
    ("Active", 2 * HOUR, None, "r1", None, False, "RotationRequested"),
    ("Active", 2 * HOUR, None, "r1", "r1", False, None),  # acted on already
    ("Active", 2 * HOUR, None, "r2", "r1", False, "RotationRequested"),  # a new request
    ("Active", 2 * HOUR, None, "", None, False, None),  # an empty annotation asks nothing
    ("Active", 2 * HOUR, None, "r1", None, True, "RotationUnsupported"),
    ("Active", 2 * HOUR, None, "r1", "r1", True, None),  # answered once
    ("Active", 30 * 60, HOUR, None, None, True, None),  # an import is never renewed
    ("Pending", 2 * HOUR, None, "r1", None, False, None),  # minting rotates nothing
    (None, None, None, "r1", None, False, None),
    ("Revoked", 2 * HOUR, None, "r1", None, False, None),
    ("Active", 2 * HOUR, None, "r" * 253, None, False, "RotationRequested"),  # the longest the status holds
    ("Active", 2 * HOUR, None, "r" * 254, None, False, "RotationRequestTooLong"),  # answered, nothing minted
    ("Active", 2 * HOUR, None, "r" * 254, None, True, "RotationRequestTooLong"),
    ("Active", 2 * HOUR, None, "r" * 254, policies.rotation_request_mark("r" * 254), False, None),  # answered
])
def test_rotation_due(phase, expires_in, renew_before, asked, handled, imported, expected):
    if isinstance(expires_in, int):
        expires_in = timedelta(seconds=expires_in)
    expires_at = NOW + expires_in if expires_in is not None else None
    action = policies.rotation_due(phase=phase, expires_at=expires_at, renew_before=renew_before,
                                   request=asked, handled_request=handled, imported=imported, now=NOW)
    assert _reason(action) == expected


@pytest.mark.parametrize("phase, minted, account, account_uid, minted_for, expected", [
    ("Active", True, "agents", "u1", "u1", None),
    ("Active", True, "agents", "u1", None, None),  # minted before uids were recorded
    ("Active", True, "agents", None, "u1", "AccountDeleted"),
    ("Pending", True, "agents", None, "u1", "AccountDeleted"),  # minted, then went Pending
    ("Active", True, "agents", "u2", "u1", "AccountRecreated"),
    ("Pending", False, "agents", None, None, None),  # not minted yet: it waits for the account
    (None, False, "agents", None, None, None),
    ("Active", True, None, None, None, None),  # a token of no account
    ("Revoked", True, "agents", None, "u1", None),  # done already
    ("Expired", True, "agents", None, "u1", None),
])
def test_revocation(phase, minted, account, account_uid, minted_for, expected):
    action = policies.revocation(phase=phase, minted=minted, account=account, account_uid=account_uid,
                                 minted_for_uid=minted_for)
    assert _reason(action) == expected
    if action:
        assert repr(account) in action.message


@pytest.mark.parametrize("phase, imported, found, owned, origin, expected", [
    ("Active", False, True, True, policies.CURRENT, None),
    ("Active", False, True, True, policies.ROTATION_UNRECORDED, None),  # the rotation records it
    ("Active", False, True, True, policies.TAMPERED, "SecretTampered"),
    ("Active", False, False, False, None, "SecretRecreated"),
    ("Active", False, True, False, None, None),  # someone else's Secret: a conflict, never written
    ("Active", True, False, False, None, None),  # an import follows its source
    ("Active", True, True, True, policies.TAMPERED, None),
    ("Pending", False, False, False, None, None),  # minting's, not a re-mint
    ("Expired", False, False, False, None, None),
    ("Revoked", False, True, True, policies.TAMPERED, None),
])
def test_remint(phase, imported, found, owned, origin, expected):
    action = policies.remint(phase=phase, imported=imported, secret_found=found, owned=owned, origin=origin)
    assert _reason(action) == expected


@pytest.mark.parametrize("until, in_secret, expected", [
    (NOW - timedelta(seconds=1), True, True),
    (NOW, True, True),
    (NOW + timedelta(seconds=1), True, False),  # still in its overlap
    (NOW - HOUR, False, False),  # gone already
    (None, True, False),  # no recorded end: a rotation in flight, not this decision's
])
def test_overlap_ended(until, in_secret, expected):
    assert policies.overlap_ended(previous_valid_until=until, previous_in_secret=in_secret, now=NOW) is expected


def test_a_decision_acted_on_is_not_taken_again():
    """Recomputed after its write held, a request answers nothing: retries never rotate twice."""
    first = policies.rotation_due(phase="Active", expires_at=NOW + 2 * HOUR, renew_before=HOUR, request="r1",
                                  handled_request=None, imported=False, now=NOW)
    again = policies.rotation_due(phase="Active", expires_at=NOW + 3 * HOUR, renew_before=HOUR, request="r1",
                                  handled_request="r1", imported=False, now=NOW)
    assert (_reason(first), again) == ("RotationRequested", None)


def test_a_rotate_value_is_recorded_as_it_is_or_by_its_hash_always_within_the_status_bound():
    assert policies.rotation_request_mark("r1") == "r1"
    assert policies.rotation_request_mark("r" * 253) == "r" * 253
    long = policies.rotation_request_mark("r" * 10_000)
    assert long.startswith("sha256:") and len(long) <= 253
    assert long != policies.rotation_request_mark("r" * 10_001)
    assert policies.rotation_request_mark(None) is None
    problem = policies.rotate_request_problem("r" * 254)
    assert "254 characters" in problem and "253" in problem and "shorter" in problem
    assert policies.rotate_request_problem("r" * 253) is None
