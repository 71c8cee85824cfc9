"""Leaked tokens: the annotation's hashes and what they call for."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tokenwarden import policies
from tokenwarden.authn import TokenIndex, verify
from tokenwarden.authn._watch import identity_from
from tokenwarden.config import Settings
from tokenwarden.policies._leaks import KEEP
from tokenwarden.tokens import hash_token, mint_token

from .test_settle_decide import ACCOUNT, SECRET, _decide, _sha, _token

LEAKED = "tokenwarden.io/leaked"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


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


def _body(token: str, previous: str | None = None, leaked: str | None = None) -> dict:
    status = {"phase": "Active", "tokenHash": hash_token(token), "tokenId": "100000000000001"}
    if previous:
        status.update(previousTokenHash=hash_token(previous), previousValidUntil="2999-01-01T00:00:00Z")
    return {"metadata": {"name": "ci", "namespace": "team", "annotations": {LEAKED: leaked} if leaked else {}},
            "spec": {"roles": ["writer"]}, "status": status}


def _verdicts(body: dict, *tokens: str) -> list[str]:
    index = TokenIndex()
    index.put(*identity_from("ServiceToken", body))
    return [verify(t, index, Settings().roles, now=NOW, prefixes=("twst", "twik")).reason for t in tokens]


def test_the_authenticator_refuses_a_leaked_value_of_the_token_itself():
    current, previous, other = mint_token("twst"), mint_token("twst"), mint_token("twst")
    assert _verdicts(_body(current, previous), current, previous) == ["ok", "ok"]
    assert _verdicts(_body(current, previous, leaked=hash_token(current)), current, previous) == ["leaked", "ok"]
    assert _verdicts(_body(current, previous, leaked=policies.with_leak(hash_token(other), hash_token(previous))),
                     current, previous) == ["ok", "leaked"]
    # A hash that is not the object's own refuses nothing: annotating one token cannot refuse another.
    index = TokenIndex()
    index.put(*identity_from("ServiceToken", _body(other)))
    index.put(*identity_from("ServiceToken", {**_body(current), "metadata": {
        "name": "mine", "namespace": "team", "annotations": {LEAKED: hash_token(other)}}}))
    assert verify(other, index, Settings().roles, now=NOW, prefixes=("twst",)).reason == "ok"
