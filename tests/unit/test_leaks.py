"""Leaked tokens: the annotation's hashes and what they call for."""
from __future__ import annotations

import pytest

from tokenwarden import policies
from tokenwarden.policies._leaks import KEEP

from .test_settle_decide import ACCOUNT, SECRET, _decide, _sha, _token

LEAKED = "tokenwarden.io/leaked"


def test_the_annotation_keeps_the_newest_hashes_once_each():
    value = None
    for i in range(KEEP + 2):
        value = policies.with_leak(value, f"sha256:{i}")
    value = policies.with_leak(value, "sha256:5")
    hashes = value.split(",")
    assert len(hashes) == KEEP and hashes[-1] == "sha256:5" and hashes.count("sha256:5") == 1
    assert "sha256:0" not in hashes
    assert policies.leaked_hashes(value) == frozenset(hashes)
    assert policies.leaked_hashes(None) == policies.leaked_hashes(" , ") == frozenset()


@pytest.mark.parametrize("annotation, current, previous, expected", [
    (None, "sha256:a", None, False),
    ("sha256:a", "sha256:a", None, True),
    ("sha256:x,sha256:a", "sha256:b", "sha256:a", True),  # the previous one, during an overlap
    ("sha256:a", "sha256:b", None, False),  # rotated since: nothing pending
])
def test_leak_pending(annotation, current, previous, expected):
    assert policies.leak_pending(annotation, current, previous) is expected


@pytest.mark.parametrize("token, expected", [
    (_token(annotations={LEAKED: _sha("t1")}), "TokenLeaked"),
    # A leak comes before a rotation asked for; after the rotation, nothing is pending.
    (_token(annotations={LEAKED: _sha("t1"), "tokenwarden.io/rotate": "r1"}), "TokenLeaked"),
    (_token(annotations={LEAKED: _sha("t0")}), None),
    (_token({"previousTokenHash": _sha("t0"), "previousValidUntil": "2026-11-26T12:30:00Z"},
            annotations={LEAKED: _sha("t0")}), "TokenLeaked"),
    (_token({"phase": "Revoked"}, annotations={LEAKED: _sha("t1")}), None),
    (_token({"expiresAt": "2026-11-26T11:00:00Z"}, annotations={LEAKED: _sha("t1")}), None),
])
def test_a_leaked_token_is_rotated_at_once(token, expected):
    assert _decide(token, ACCOUNT, SECRET if token["status"]["phase"] == "Active" else None) == expected


def test_a_leaked_imported_key_is_not_rotated():
    token = _token({"tokenHash": "hmac-sha256:k", "imported": True},
                   spec={"roles": ["reader"], "import": {"secretRef": {"name": "src"}}},
                   annotations={LEAKED: "hmac-sha256:k"})
    assert _decide(token, None, None) is None
