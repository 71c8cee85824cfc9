from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest

from tokenwarden.authn import Identity, LastUsed, TokenIndex, extract_token, verify
from tokenwarden.config import Settings
from tokenwarden.tokens import hash_token, mint_token

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
CATALOG = Settings().roles
PREFIXES = ("twst", "twik")


def identity(**overrides) -> Identity:
    values = dict(kind="ServiceToken", namespace="team", name="ci", account="agents", roles=("writer",),
                  phase="Active", expires_at=None)
    values.update(overrides)
    return Identity(**values)


def index_with(token: str, ident: Identity, previous: tuple[str, datetime] | None = None) -> TokenIndex:
    index = TokenIndex()
    hashes = [(hash_token(token), None)]
    if previous:
        hashes.append((hash_token(previous[0]), previous[1]))
    index.put(ident, hashes)
    return index


def check(token, index, **kwargs):
    return verify(token, index, CATALOG, now=NOW, prefixes=PREFIXES, **kwargs)


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer T"}, {"authorization": "bearer T"}, {"Authorization": "ApiKey T"},
    {"X-API-Key": "T"}, {"Authorization": "Basic " + base64.b64encode(b"service_token:T").decode()},
])
def test_credential_forms(headers):
    assert extract_token(headers) == "T"


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer"}, {"Authorization": "Digest T"}, {"Authorization": "Basic !!!"},
    {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}, {"X-API-Key": "  "},
])
def test_no_credential(headers):
    assert extract_token(headers) is None


def test_custom_scheme_only_when_configured():
    assert extract_token({"Authorization": "Otel T"}) is None
    assert extract_token({"Authorization": "Otel T"}, ("bearer", "otel")) == "T"


def test_outcomes():
    token = mint_token("twst")
    index = index_with(token, identity(expires_at=NOW + timedelta(hours=1)))
    assert check(token, index).status == 200
    assert check(token, index).identity.subject == "tokenwarden:team:agents"
    assert check(token, index, permission="write").status == 200
    assert check(token, index, permission="write:profiles").status == 200
    assert (check(token, index, permission="read").status, check(token, index, permission="read").reason) == \
        (403, "permission")
    assert check(mint_token("twst"), index).reason == "unknown"
    assert check(token[:-1] + ("A" if token[-1] != "A" else "B"), index).reason == "malformed"
    expired = index_with(token, identity(expires_at=NOW))
    assert check(token, expired).reason == "expired"
    revoked = index_with(token, identity(phase="Revoked"))
    assert check(token, revoked).reason == "revoked"
    index.set_account_disabled("team", "agents", True)
    assert check(token, index).reason == "disabled"


def test_projects():
    token = mint_token("twst")
    index = index_with(token, identity(roles=("reader@shop",)))
    assert check(token, index, permission="read", project="shop").status == 200
    assert check(token, index, permission="read", project="other").status == 403
    assert check(token, index, permission="read").status == 403


def test_ingestion_keys_grant_only_ingest():
    key = mint_token("twik")
    index = index_with(key, identity(kind="IngestionAPIKey", account=None, roles=()))
    assert check(key, index, permission="ingest").roles == ("ingest",)
    assert check(key, index, permission="write").status == 403


def test_previous_token_valid_only_during_overlap():
    old, new = mint_token("twst"), mint_token("twst")
    index = index_with(new, identity(), previous=(old, NOW + timedelta(minutes=5)))
    assert check(old, index).status == 200
    late = index_with(new, identity(), previous=(old, NOW))
    assert check(old, late).reason == "rotated"


@pytest.mark.parametrize("token", ["x" * 1_000_000, "twst_\u00e9t\u00e9", "abc\x00def", "tab\there", ""])
def test_hostile_strings_are_clean_401s(token):
    verdict = check(token, TokenIndex())
    assert verdict.status == 401 and verdict.reason in ("malformed", "missing")


def test_foreign_formats_go_to_the_lookup():
    key = "glsa_" + "x" * 32
    index = index_with(key, identity())
    assert check(key, index).status == 200


def test_last_used_batches_at_most_once_per_interval():
    last_used = LastUsed(interval=60)
    ident = identity()
    last_used.record(ident, NOW)
    assert list(last_used.due().values()) == [NOW]
    last_used.written[("ServiceToken", "team", "ci")] = NOW
    last_used.record(ident, NOW + timedelta(seconds=10))
    assert last_used.due() == {}
    last_used.record(ident, NOW + timedelta(seconds=61))
    assert list(last_used.due().values()) == [NOW + timedelta(seconds=61)]
