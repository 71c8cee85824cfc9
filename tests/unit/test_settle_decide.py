"""What settling a minted token decides, from its state as read: the chain of decisions in order."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from tokenwarden.config import Settings
from tokenwarden.handlers._indexes import Indexes
from tokenwarden.handlers._settle import Account, SecretSeen, decide
from tokenwarden.handlers._token_kinds import INGESTION_KEY, SERVICE_TOKEN
from tokenwarden.kube._secrets import TokenSecret

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _memo(bindings=(("agents", ("reader",)),)):
    settings = Settings()
    indexes = Indexes(settings.roles)
    indexes.observe("ServiceAccount", {"metadata": {"uid": "ua", "name": "agents", "namespace": "ns"}})
    for i, (account, roles) in enumerate(bindings):
        indexes.observe("RoleBinding", {"metadata": {"uid": f"b{i}", "name": f"b{i}", "namespace": "ns"},
                                        "spec": {"serviceAccountName": account, "roles": list(roles)}})
    return SimpleNamespace(settings=settings, indexes=indexes, import_keys=SimpleNamespace(predates=lambda _: False))


def _token(status=None, spec=None, annotations=None):
    base = {"phase": "Active", "tokenHash": _sha("t1"), "secretName": "agent", "effectiveRoles": ["reader"],
            "accountUID": "ua", "expiresAt": "2026-11-26T13:00:00Z",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Minted"}]}
    return {"metadata": {"name": "agent", "namespace": "ns", "uid": "ut", "annotations": annotations or {}},
            "spec": spec if spec is not None else {"serviceAccountName": "agents", "ttl": "1h"},
            "status": {**base, **(status or {})}}


SECRET = TokenSecret("agent", owned=True, token="t1", recorded_hash=_sha("t1"))
ACCOUNT = Account("ua", disabled=False)


def _decide(token, account=ACCOUNT, found=SECRET, memo=None, kind=SERVICE_TOKEN):
    spec = kind.spec_model.model_validate(token["spec"])
    action = decide(kind, token, spec, account, SecretSeen.of(found) if found else None, memo or _memo(), NOW)
    return action.reason if action else None


@pytest.mark.parametrize("token, account, found, expected", [
    (_token(), ACCOUNT, SECRET, None),  # settled: nothing to do
    (_token(), Account(None, False), SECRET, "AccountDeleted"),
    (_token(), Account("other", False), SECRET, "AccountRecreated"),
    # Revocation comes first, whatever else the state calls for.
    (_token(annotations={"tokenwarden.io/rotate": "r1"}), Account(None, False), None, "AccountDeleted"),
    (_token({"phase": "Pending"}), Account(None, False), SECRET, "AccountDeleted"),  # minted, then Pending
    (_token({"phase": "Revoked"}), Account(None, False), SECRET, "SecretLeft"),  # its Secret still there
    (_token({"phase": "Revoked"}), Account(None, False), None, None),
    (_token(), ACCOUNT, None, "SecretRecreated"),
    (_token(), ACCOUNT, TokenSecret("agent", owned=True, token="by-hand"), "SecretTampered"),
    (_token(), ACCOUNT, TokenSecret("agent", owned=False), None),  # someone else's: a conflict, not ours
    # A rotation asked for replaces a tampered value itself (no previous token kept): one re-mint.
    (_token(annotations={"tokenwarden.io/rotate": "r1"}), ACCOUNT, TokenSecret("agent", owned=True, token="by-hand"),
     "RotationRequested"),
    (_token(annotations={"tokenwarden.io/rotate": "r1"}), ACCOUNT, None, "SecretRecreated"),
    (_token({"expiresAt": "2026-11-26T11:00:00Z"}), ACCOUNT, None, None),  # expired: the expiry's
    (_token(annotations={"tokenwarden.io/rotate": "r1"}), ACCOUNT, SECRET, "RotationRequested"),
    (_token({"rotationRequest": "r1"}, annotations={"tokenwarden.io/rotate": "r1"}), ACCOUNT, SECRET, None),
    (_token(spec={"serviceAccountName": "agents", "ttl": "2h", "rotation": {"renewBefore": "90m"}}),
     ACCOUNT, SECRET, "RenewBeforeExpiry"),
    (_token({"effectiveRoles": ["writer"]}), ACCOUNT, SECRET, "RolesChanged"),
    (_token(), Account("ua", True), SECRET, "AccountDisabled"),
    (_token({"conditions": [{"type": "Ready", "status": "False", "reason": "AccountDisabled"}]}),
     ACCOUNT, SECRET, "AccountEnabled"),
    (_token({"conditions": [{"type": "Ready", "status": "False", "reason": "AccountDisabled"}]}),
     Account("ua", True), SECRET, None),
])
def test_decide(token, account, found, expected):
    assert _decide(token, account, found) == expected


def test_roles_follow_a_binding_gone():
    assert _decide(_token(), memo=_memo(bindings=())) == "NoRolesGranted"
    settled = _token({"effectiveRoles": [], "conditions": [{"type": "Ready", "status": "False",
                                                             "reason": "NoRolesGranted"}]})
    assert _decide(settled, memo=_memo(bindings=())) is None


@pytest.mark.parametrize("until, previous, value, expected", [
    (NOW - timedelta(seconds=1), "t0", "t1", "OverlapEnded"),
    (NOW + timedelta(minutes=5), "t0", "t1", None),  # still in the overlap
    (NOW - timedelta(seconds=1), None, "t1", None),  # gone already
    # A successor the status does not name yet: the previous token is the status's; it stays.
    (NOW - timedelta(seconds=1), "t1", "t2", None),
])
def test_the_previous_token_goes_only_after_the_overlap(until, previous, value, expected):
    token = _token({"previousTokenHash": _sha("t0"), "previousValidUntil": until.strftime("%Y-%m-%dT%H:%M:%SZ")})
    found = TokenSecret("agent", owned=True, token=value, previous=previous, recorded_hash=_sha(value))
    assert _decide(token, found=found) == expected


def test_an_ingestion_key_has_no_account_and_no_roles():
    key = _token(spec={"ttl": "1h"})
    key["status"].pop("effectiveRoles")
    assert _decide(key, account=None, kind=INGESTION_KEY) is None
    key["metadata"]["annotations"] = {"tokenwarden.io/rotate": "now"}
    assert _decide(key, account=None, kind=INGESTION_KEY) == "RotationRequested"
