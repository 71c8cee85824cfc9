"""The authenticator's pure parsing and verification under generated input: no exception
escapes, and the answer is a valid verdict or a clean refusal."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from hypothesis import given
from hypothesis import strategies as st

from tokenwarden.authn import Account, Identity, TokenIndex, extract_token, verify
from tokenwarden.authn._issuer import IssuerKeys
from tokenwarden.authn._jwt import LATEST_EXPIRY, peek, refusal
from tokenwarden.authn._verify import PROJECT
from tokenwarden.authn._workload import Review, WorkloadVerifier
from tokenwarden.config import Settings, WorkloadIdentitySettings
from tokenwarden.policies import Binding
from tokenwarden.tokens import hash_token

from ..issuer import Issuer, sign
from .strategies import AUDIENCE, JSON, VALID_TOKEN, credential_headers, jwt_of, jwts, tokens

NOW = datetime(2027, 1, 15, 12, 0, tzinfo=timezone.utc)
SETTINGS = Settings()
PREFIXES = (SETTINGS.prefixes.service_token, SETTINGS.prefixes.ingestion_key)
REFUSALS = {"missing", "malformed", "unknown"}
WORKLOAD_USER = "system:serviceaccount:team:parca-agent"


def _index() -> TokenIndex:
    index = TokenIndex()
    index.put(Identity(kind="ServiceToken", namespace="team", name="ci", account="agents",
                       roles=(), phase="Active", expires_at=None),
              [(hash_token(VALID_TOKEN), None)])
    index.put_account(("team", "agents"), Account(uid="uid-agents", workloads=("parca-agent",)))
    index.put_binding(("team", "agents-write"), "agents", Binding(("writer", "profile-writer")))
    index.put_binding(("team", "agents-read-shop"), "agents", Binding(("reader",), "shop"))
    return index


INDEX = _index()


@given(headers=credential_headers())
def test_any_headers_give_a_token_or_none(headers):
    token = extract_token(headers)
    assert token is None or (isinstance(token, str) and token)


@given(token=tokens(), permission=st.one_of(st.none(), st.text(max_size=20)),
       project=st.one_of(st.none(), st.text(max_size=70)))
def test_any_token_is_refused_cleanly(token, permission, project):
    verdict = verify(token, INDEX, SETTINGS.roles, now=NOW, prefixes=PREFIXES, permission=permission,
                     project=project)
    assert (verdict.status, verdict.identity) == (401, None) and verdict.reason in REFUSALS


@given(permission=st.one_of(st.none(), st.text(max_size=20)), project=st.one_of(st.none(), st.text(max_size=70)),
       audiences=st.one_of(st.none(), st.lists(st.text(max_size=20), max_size=4)))
def test_a_valid_token_is_answered_whatever_is_asked(permission, project, audiences):
    verdict = verify(VALID_TOKEN, INDEX, SETTINGS.roles, now=NOW, prefixes=PREFIXES, permission=permission,
                     project=project, audiences=audiences)
    assert verdict.status in (200, 403) and verdict.identity is not None
    if verdict.status == 200 and verdict.project is not None:  # what goes to X-Auth-Project is a DNS label
        assert PROJECT.fullmatch(verdict.project)


@given(token=st.one_of(jwts(), tokens()))
def test_any_jwt_is_read_or_refused(token):
    claims = peek(token)
    if claims is not None:
        assert all(isinstance(a, str) for a in claims.audiences)
        assert claims.expires is None or 0 <= claims.expires <= LATEST_EXPIRY
    assert refusal(claims, [AUDIENCE], NOW.timestamp()) in (None, "malformed", "audience", "expired")


class Reviewer:
    """kube-apiserver's TokenReview: accepts one token; counts the calls."""

    def __init__(self, accepted: str) -> None:
        self.accepted, self.calls = accepted, 0

    def __call__(self, token, audiences) -> Review:
        self.calls += 1
        if token == self.accepted:
            return Review(True, WORKLOAD_USER, (AUDIENCE,))
        return Review(False, error="invalid bearer token")


ISSUER = Issuer()
KID = ISSUER.add_rsa("fuzz")
# Signed by the issuer: the one workload token that passes. Made-up ones share its kid or not.
WORKLOAD_TOKEN = sign(ISSUER.keys[KID], {"aud": [AUDIENCE], "exp": NOW.timestamp() + 3600, "sub": WORKLOAD_USER},
                      KID)


def workload_verifier(reviewer: Reviewer, clock) -> WorkloadVerifier:
    return WorkloadVerifier(WorkloadIdentitySettings(reviewsPerSecond=1000, reviewBurst=1000), [AUDIENCE], INDEX,
                            reviewer, clock, IssuerKeys(ISSUER.fetch, clock))


@given(tokens=st.lists(st.one_of(jwts(KID), tokens()), min_size=1, max_size=5))
def test_any_jwt_gets_a_verdict_and_a_made_up_one_costs_no_review(tokens):
    good = WORKLOAD_TOKEN
    reviewer = Reviewer(good)
    check = workload_verifier(reviewer, lambda: NOW.timestamp())

    async def verify_all() -> None:
        for token in tokens:
            calls = reviewer.calls
            verdict = await check.verify(token)
            assert verdict.status in (200, 401, 429, 503)
            if verdict.status == 200:
                assert token == good
            claims = peek(token)
            if claims is None or claims.expires is None:
                assert (verdict.status, verdict.reason, reviewer.calls) == (401, "malformed", calls)
            elif token != good:  # made up: no key of the issuer signed it, so no review is spent
                assert verdict.status == 401 and reviewer.calls == calls
        # The answer for a valid token is unchanged afterwards.
        assert (await check.verify(good)).status == 200
    asyncio.run(verify_all())


@given(value=JSON)
def test_any_json_claim_value_is_read_or_refused(value):
    claims = peek(jwt_of({"aud": AUDIENCE, "exp": value, "sub": value}))
    assert claims is not None and (claims.expires is None or 0 <= claims.expires <= LATEST_EXPIRY)
