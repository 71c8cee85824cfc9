"""Workload identity in the authenticator: the unverified look at a JWT, the TokenReview
cache, the rate limit and the mapping to an account, with a reviewer double in place of
kube-apiserver (tests/integration/test_workload_identity.py asks the real one)."""
from __future__ import annotations

import asyncio
import base64
import json
import random
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web

from tokenwarden.authn import Account, Authenticator, TokenIndex
from tokenwarden.authn._jwt import JWT_SHAPE, Claims, looks_like_jwt, peek, refusal, service_account_of
from tokenwarden.authn._budget import FairBudget, TokenBucket
from tokenwarden.authn._issuer import IssuerKeys, issuer_key
from tokenwarden.authn._workload import (
    BoundedCache,
    Review,
    Reviewed,
    ReviewUnavailable,
    WorkloadVerifier,
    bind,
    remember,
)
from tokenwarden.config import Settings, WorkloadIdentitySettings
from tokenwarden.policies import Binding

from ..issuer import Issuer, sign

NOW = 1_800_000_000.0


ISSUER = Issuer()
KID = ISSUER.add_rsa("rsa-1")


def jwt(payload: dict, header: dict | None = None) -> str:
    """A JWT signed by the test issuer's key (with ``header`` in place of its own, if given)."""
    return sign(ISSUER.keys[KID], payload, KID, header)


def sa_token(name: str = "parca-agent", namespace: str = "team", aud=("tokenwarden",), exp: float = NOW + 3600,
             nonce: str = "") -> str:
    return jwt({"aud": list(aud), "exp": exp, "sub": f"system:serviceaccount:{namespace}:{name}", "n": nonce})


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class FakeReviewer:
    """kube-apiserver's TokenReview, as a table: token → Review; counts the calls."""

    def __init__(self) -> None:
        self.answers: dict[str, Review] = {}
        self.calls = 0
        self.down = False

    def __call__(self, token, audiences) -> Review:
        self.calls += 1
        if self.down:
            raise ReviewUnavailable("kube-apiserver could not be reached")
        return self.answers.get(token, Review(False, error="invalid bearer token"))

    def accept(self, token: str, username: str, audiences=("tokenwarden",)) -> str:
        self.answers[token] = Review(True, username, tuple(audiences))
        return token


def index_with_account(name="agents", workloads=("parca-agent",), **account) -> TokenIndex:
    index = TokenIndex()
    index.put_account(("team", name), Account(uid=f"uid-{name}", workloads=workloads, **account))
    index.put_binding(("team", f"{name}-profiles"), name, Binding(("profile-writer",)))
    return index


def verifier(index: TokenIndex, reviewer: FakeReviewer, clock: Clock, issuer: Issuer = ISSUER,
             **settings) -> WorkloadVerifier:
    """No wait for a review by default: the fake clock moves only when a test moves it (the
    fair budget's waits are tested in loop time, below)."""
    settings.setdefault("reviewWait", "0s")
    return WorkloadVerifier(WorkloadIdentitySettings(**settings), ["tokenwarden"], index, reviewer, clock,
                            IssuerKeys(issuer.fetch, clock))


# -- the unverified look ----------------------------------------------------------

def test_only_three_base64url_parts_look_like_a_jwt():
    assert looks_like_jwt(sa_token())
    for token in ("twst_abc", "a.b", "a.b.c.d", "a.b.c=", "a b.c.d", "", ".a.b", "a.b.", "a..b", "é.b.c",
                  "a.b.c\n", "a.b.c\x00"):
        assert not looks_like_jwt(token)


@pytest.mark.parametrize("seed", range(5))
def test_the_shape_check_agrees_with_its_regular_expression(seed):
    rng = random.Random(seed)
    alphabet = "aZ09-_.=+/ é\n"
    for _ in range(2000):
        token = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        assert looks_like_jwt(token) == (JWT_SHAPE.fullmatch(token) is not None), repr(token)


def test_claims_are_read_without_trusting_them():
    claims = peek(sa_token())
    assert (claims.audiences, claims.expires, claims.subject) == (("tokenwarden",), NOW + 3600,
                                                                  "system:serviceaccount:team:parca-agent")
    assert (claims.algorithm, claims.key_id) == ("RS256", KID) and len(claims.signature) == 256
    assert claims.signed == sa_token().rpartition(".")[0].encode()
    assert peek(jwt({"aud": "tokenwarden", "exp": 5})).expires == 5.0
    assert peek(jwt({"aud": "x"}, header={"typ": "JWT"})) is None  # no alg: no JWT
    assert peek("eyJ.eyJ.sig") is None
    assert peek(jwt({"exp": True})).expires is None


def _raw_jwt(payload: bytes, header: bytes = b'{"alg":"RS256"}') -> str:
    """A JWT whose parts are the given bytes, whatever they are."""
    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return f"{part(header)}.{part(payload)}.c2lnbmF0dXJl"


DEEP = 6000  # far past the JSON parser's recursion limit


@pytest.mark.parametrize("payload", [
    b'{"aud": "tokenwarden", "exp": ' + b"9" * 400 + b"}",      # 400 digits: float() overflows
    b'{"aud": "tokenwarden", "exp": -' + b"9" * 400 + b"}",
    b'{"aud": "tokenwarden", "exp": 1e400}',                    # Infinity, once parsed
    b'{"aud": "tokenwarden", "exp": NaN}',
    b'{"aud": "tokenwarden", "exp": Infinity}',
    b'{"aud": "tokenwarden", "exp": -1}',
    b'{"aud": "tokenwarden", "exp": 253402300801}',             # past the year 9999
    b'{"aud": "tokenwarden", "exp": "1800000000"}',
])
def test_an_implausible_expiry_is_malformed(payload):
    claims = peek(_raw_jwt(payload))
    assert claims is not None and claims.expires is None
    assert refusal(claims, ["tokenwarden"], NOW) == "malformed"


@pytest.mark.parametrize("token", [
    _raw_jwt(b"[" * DEEP),
    _raw_jwt(b'{"aud": ' + b"[" * DEEP + b"]" * DEEP + b"}"),
    _raw_jwt(b'{"aud": "tokenwarden", "exp": 1}', header=b'{"alg": ' + b"[" * DEEP),
    _raw_jwt(b"\xff\xfe not utf-8"),
    _raw_jwt(b'{"aud": "tokenwarden", "exp": 1'),
    _raw_jwt(b'"just a string"'),
    "e.e.e",                                                    # not base64 of anything
])
def test_malformed_json_in_a_jwt_is_no_jwt(token):
    assert peek(token) is None
    assert refusal(peek(token), ["tokenwarden"], NOW) == "malformed"


def test_expiries_that_are_plausible_are_read():
    assert peek(_raw_jwt(b'{"aud": "tokenwarden", "exp": 1800000000.5}')).expires == 1_800_000_000.5
    assert peek(_raw_jwt(b'{"aud": "tokenwarden", "exp": 253402300800}')).expires == 253_402_300_800.0
    assert peek(_raw_jwt(b'{"aud": "tokenwarden", "exp": 0}')).expires == 0.0


def test_obvious_mismatches_are_refused_before_any_review():
    audiences = ["tokenwarden"]
    assert refusal(peek(sa_token()), audiences, NOW) is None
    assert refusal(peek(sa_token(aud=("https://kubernetes.default.svc",))), audiences, NOW) == "audience"
    assert refusal(peek(sa_token(exp=NOW)), audiences, NOW) == "expired"
    assert refusal(peek(jwt({"aud": ["tokenwarden"]})), audiences, NOW) == "malformed"  # no exp: no projected token
    assert refusal(None, audiences, NOW) == "malformed"


def test_only_service_account_users_map():
    assert service_account_of("system:serviceaccount:team:parca-agent") == ("team", "parca-agent")
    for user in ("system:serviceaccount:team", "admin", "system:node:n1", "system:serviceaccount:team:a:b"):
        assert service_account_of(user) is None


# -- caches and the rate limit -----------------------------------------------------

def test_a_positive_answer_lasts_the_cache_ttl_and_never_past_exp():
    settings = WorkloadIdentitySettings(cacheTTL="60s", negativeCacheTTL="5s")
    user = "system:serviceaccount:team:parca-agent"
    ours = ("tokenwarden",)
    assert remember(Review(True, user, ours), ["tokenwarden"], NOW + 3600, NOW, settings) == \
        Reviewed(NOW + 60, ("team", "parca-agent"))
    assert remember(Review(True, user, ours), ["tokenwarden"], NOW + 20, NOW, settings).until == NOW + 20
    assert remember(Review(False), ["tokenwarden"], NOW + 3600, NOW, settings) == Reviewed(NOW + 5, reason="rejected")
    assert remember(Review(True, "admin", ours), ["tokenwarden"], NOW + 3600, NOW, settings).reason == \
        "not-service-account"
    # An answer that names no audience, to a review that sent ours, did not check them: refused.
    assert remember(Review(True, user), ["tokenwarden"], NOW + 3600, NOW, settings).reason == "audience"
    assert remember(Review(True, user, ("other",)), ["tokenwarden"], NOW + 3600, NOW, settings).reason == "audience"


def test_the_cache_ttl_is_at_most_a_minute():
    with pytest.raises(ValueError, match="at most 60s"):
        WorkloadIdentitySettings(cacheTTL="2m")
    assert Settings.model_validate({"workloadIdentity": {"cacheTTL": "5s"}}).workload_identity.cache_ttl == \
        timedelta(seconds=5)


def test_the_cache_is_bounded_and_forgets_expired_answers():
    cache = BoundedCache(2)
    for key in (b"a", b"b", b"c"):
        cache.put(key, Reviewed(NOW + 10, reason="rejected"))
    assert list(cache.entries) == [b"b", b"c"]
    assert cache.get(b"b", NOW) is not None and cache.get(b"b", NOW + 10) is None and b"b" not in cache.entries


def test_the_bucket_allows_a_burst_then_the_rate():
    clock = Clock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5
    assert [bucket.take(), bucket.take()] == [True, False]
    clock.now += 100
    assert sum(bucket.take() for _ in range(10)) == 3


# -- mapping to an account ---------------------------------------------------------

def test_the_account_that_lists_the_service_account_is_the_identity():
    index = index_with_account()
    verdict = bind(index, ("team", "parca-agent"))
    assert verdict.status == 200 and verdict.service_account == "parca-agent"
    assert verdict.identity.subject == "tokenwarden:team:serviceaccount:agents"
    assert verdict.identity.roles == ("profile-writer",)
    assert bind(index, ("team", "other")).reason == "unbound"
    assert bind(index, ("elsewhere", "parca-agent")).reason == "unbound"
    assert bind(index_with_account(disabled=True), ("team", "parca-agent")).reason == "disabled"
    assert bind(index_with_account(deleting=True), ("team", "parca-agent")).reason == "deleted"


def test_an_account_changed_or_dropped_changes_the_mapping():
    index = index_with_account()
    index.put_account(("team", "agents"), Account(uid="uid-agents", workloads=("otel",)))
    assert bind(index, ("team", "parca-agent")).reason == "unbound"
    index.put_account(("team", "second"), Account(uid="uid-2", workloads=("otel",)))
    assert bind(index, ("team", "otel")).reason == "ambiguous"  # two accounts list it: neither is granted
    index.drop_account(("team", "second"))
    assert bind(index, ("team", "otel")).status == 200
    index.drop_account(("team", "agents"))
    assert index.workloads == {} and bind(index, ("team", "otel")).reason == "unbound"


# -- the verifier ---------------------------------------------------------------------

async def test_a_cached_answer_is_used_until_its_ttl_and_the_account_is_looked_up_each_time():
    index, reviewer, clock = index_with_account(), FakeReviewer(), Clock()
    check = verifier(index, reviewer, clock, cacheTTL="30s")
    token = reviewer.accept(sa_token(), "system:serviceaccount:team:parca-agent")
    assert (await check.verify(token)).status == 200
    assert (await check.verify(token)).status == 200 and reviewer.calls == 1
    index.put_account(("team", "agents"), Account(uid="uid-agents", disabled=True, workloads=("parca-agent",)))
    assert (await check.verify(token)).reason == "disabled" and reviewer.calls == 1  # at once, from the cache
    index.drop_account(("team", "agents"))
    assert (await check.verify(token)).reason == "unbound"
    clock.now += 30
    del reviewer.answers[token]  # the Kubernetes ServiceAccount was deleted meanwhile
    assert (await check.verify(token)).reason == "rejected" and reviewer.calls == 2


async def test_refusals_before_a_review_and_negative_answers_cost_no_call():
    reviewer, clock = FakeReviewer(), Clock()
    check = verifier(index_with_account(), reviewer, clock, negativeCacheTTL="5s")
    assert (await check.verify(sa_token(aud=("other",)))).reason == "audience"
    assert (await check.verify(sa_token(exp=NOW - 1))).reason == "expired"
    assert reviewer.calls == 0
    unknown = sa_token(nonce="forged")
    assert (await check.verify(unknown)).reason == "rejected"
    assert (await check.verify(unknown)).reason == "rejected" and reviewer.calls == 1
    clock.now += 5
    await check.verify(unknown)
    assert reviewer.calls == 2


async def test_malformed_jwts_are_refused_without_a_review():
    reviewer, clock = FakeReviewer(), Clock()
    check = verifier(index_with_account(), reviewer, clock)
    for token in (_raw_jwt(b'{"aud": "tokenwarden", "exp": ' + b"9" * 400 + b"}"), _raw_jwt(b"[" * DEEP),
                  _raw_jwt(b'{"aud": "tokenwarden", "exp": NaN}')):
        verdict = await check.verify(token)
        assert (verdict.status, verdict.reason) == (401, "malformed")
    assert reviewer.calls == 0


async def test_a_flood_of_made_up_jwts_is_held_to_the_rate():
    reviewer, clock = FakeReviewer(), Clock()
    check = verifier(index_with_account(), reviewer, clock, reviewsPerSecond=5, reviewBurst=10)
    reasons = [(await check.verify(sa_token(nonce=str(i)))).reason for i in range(100)]
    assert reviewer.calls == 10 and reasons.count("review-rate-limited") == 90
    assert (await check.verify(sa_token(nonce="again"))).status == 429


async def test_an_unreachable_api_server_is_503_and_nothing_is_cached():
    reviewer, clock = FakeReviewer(), Clock()
    check = verifier(index_with_account(), reviewer, clock)
    token = reviewer.accept(sa_token(), "system:serviceaccount:team:parca-agent")
    reviewer.down = True
    assert (await check.verify(token)).status == 503
    reviewer.down = False
    assert (await check.verify(token)).status == 200 and reviewer.calls == 2


# -- the signature, before any review -----------------------------------------------------

def _claims(name: str = "parca-agent", namespace: str = "team", nonce: str = "") -> dict:
    return {"aud": ["tokenwarden"], "exp": NOW + 3600, "sub": f"system:serviceaccount:{namespace}:{name}",
            "n": nonce}


async def test_a_token_the_issuer_did_not_sign_costs_no_review():
    reviewer, clock = FakeReviewer(), Clock()
    check = verifier(index_with_account(), reviewer, clock)
    stranger = Issuer()
    other_key = stranger.keys[stranger.add_rsa(KID)]  # the issuer's kid, another key
    signed_with_ours = sa_token()
    header, payload, _ = signed_with_ours.split(".")
    forged = {
        "signature": sign(other_key, _claims(), KID),
        "signature-of-another-token": f"{header}.{jwt(_claims(nonce='x')).split('.')[1]}."
                                      f"{signed_with_ours.split('.')[2]}",
        "unknown-key": sign(other_key, _claims(), "made-up"),
    }
    # alg none, and HS256 keyed with the public key's bytes: never accepted, whatever the signature.
    for alg in ("none", "HS256", "RS256 "):
        forged[f"alg {alg}"] = sign(ISSUER.keys[KID], _claims(), KID, {"alg": alg, "kid": KID})
    for what, token in forged.items():
        reason = what if what in ("signature", "unknown-key") else "signature"
        assert (await check.verify(token)).reason == reason, what
    assert reviewer.calls == 0


async def test_a_signed_token_is_reviewed_and_rsa_and_ec_keys_both_sign():
    issuer = Issuer()
    rsa_kid, ec_kid = issuer.add_rsa("rsa"), issuer.add_ec("ec")
    reviewer, clock = FakeReviewer(), Clock()
    check = verifier(index_with_account(), reviewer, clock, issuer)
    for kid in (rsa_kid, ec_kid):
        token = reviewer.accept(sign(issuer.keys[kid], _claims(nonce=kid), kid),
                                "system:serviceaccount:team:parca-agent")
        assert (await check.verify(token)).status == 200, kid
    assert reviewer.calls == 2 and issuer.reads == 1
    # Signed, but not for a ServiceAccount: refused without a review.
    assert (await check.verify(sign(issuer.keys[rsa_kid], {**_claims(), "sub": "admin"}, rsa_kid))).reason == \
        "not-service-account"
    assert reviewer.calls == 2


async def test_unknown_kids_read_the_keys_once_per_interval_and_one_read_at_a_time():
    issuer = Issuer()
    issuer.add_rsa("old")
    reviewer, clock = FakeReviewer(), Clock()
    check = verifier(index_with_account(), reviewer, clock, issuer)
    stranger = Issuer()
    made_up = [sign(stranger.keys[stranger.add_rsa(f"kid-{i}")], _claims(nonce=str(i)), f"kid-{i}")
               for i in range(3)]
    verdicts = await asyncio.gather(*(check.verify(made_up[i % 3]) for i in range(60)))
    assert {v.reason for v in verdicts} == {"unknown-key"} and issuer.reads == 1
    clock.now += 5
    assert (await check.verify(made_up[0])).reason == "unknown-key" and issuer.reads == 1
    # The issuer rotates its key: a token of the new key is found once the interval has passed.
    new = issuer.add_rsa("new")
    token = reviewer.accept(sign(issuer.keys[new], _claims(), new), "system:serviceaccount:team:parca-agent")
    assert (await check.verify(token)).reason == "unknown-key"
    clock.now += 5
    assert (await check.verify(token)).status == 200 and issuer.reads == 2
    assert reviewer.calls == 1


async def test_keys_that_cannot_be_read_are_503_until_they_are():
    issuer = Issuer()
    kid = issuer.add_ec("ec")
    issuer.down = True
    reviewer, clock = FakeReviewer(), Clock()
    check = verifier(index_with_account(), reviewer, clock, issuer)
    token = reviewer.accept(sign(issuer.keys[kid], _claims(), kid), "system:serviceaccount:team:parca-agent")
    verdict = await check.verify(token)
    assert (verdict.status, verdict.reason) == (503, "issuer-keys-unavailable")
    assert (await check.verify(token)).status == 503 and issuer.reads == 1  # read again only after the interval
    issuer.down = False
    clock.now += 10
    assert (await check.verify(token)).status == 200 and issuer.reads == 2


def test_only_signing_keys_of_known_types_are_taken():
    issuer = Issuer()
    issuer.add_rsa("rsa")
    issuer.add_ec("ec")
    rsa_jwk, ec_jwk = issuer.jwks()
    assert issuer_key(rsa_jwk).algorithms.keys() == {"RS256", "RS384", "RS512"}
    assert set(issuer_key(ec_jwk).algorithms) == {"ES256"}
    for jwk in ({**rsa_jwk, "use": "enc"}, {**rsa_jwk, "n": 5}, {**rsa_jwk, "n": "!!"}, {**ec_jwk, "crv": "P-192"},
                {**ec_jwk, "x": ec_jwk["y"]}, {"kty": "oct", "k": "c2VjcmV0"}, {}):
        assert issuer_key(jwk) is None, jwk


# -- the fair budget ------------------------------------------------------------------------

async def _ask(budget: FairBudget, namespace: str) -> tuple[str, bool]:
    return namespace, await budget.acquire(namespace)


@pytest.mark.looptime
async def test_a_namespace_flooding_with_signed_tokens_leaves_the_others_their_turns():
    loop = asyncio.get_running_loop()
    budget = FairBudget(rate=10, burst=10, clock=loop.time, wait=2, queue=100)
    flood = [asyncio.create_task(_ask(budget, "flood")) for _ in range(100)]
    await asyncio.sleep(0)  # the flood is first in line
    others = [asyncio.create_task(_ask(budget, namespace)) for namespace in ("team", "ops") for _ in range(5)]
    answers = await asyncio.gather(*flood, *others)
    granted = {namespace: sum(ok for n, ok in answers if n == namespace) for namespace in ("flood", "team", "ops")}
    assert granted["team"] == granted["ops"] == 5
    # The burst, then the rate for the 2 s the flood waits: nothing more is sent.
    assert 10 + 10 <= sum(granted.values()) <= 10 + 10 * 2 + 1
    assert granted["flood"] == sum(granted.values()) - 10
    assert loop.time() <= 2.5 and not budget.waiting


@pytest.mark.looptime
async def test_a_namespace_waits_in_a_bounded_queue_and_not_at_all_without_a_wait():
    loop = asyncio.get_running_loop()
    budget = FairBudget(rate=1, burst=1, clock=loop.time, wait=5, queue=2)
    assert await budget.acquire("team")  # the burst
    waiting = [asyncio.create_task(_ask(budget, "team")) for _ in range(2)]
    await asyncio.sleep(0)
    assert await budget.acquire("team") is False  # a third waiter: refused at once
    assert [ok for _, ok in await asyncio.gather(*waiting)] == [True, True]
    assert loop.time() == pytest.approx(2)
    impatient = FairBudget(rate=1, burst=1, clock=loop.time, wait=0)
    assert await impatient.acquire("team") and not await impatient.acquire("team")


@pytest.mark.looptime
async def test_a_request_that_goes_away_gives_up_its_turn():
    loop = asyncio.get_running_loop()
    budget = FairBudget(rate=1, burst=1, clock=loop.time, wait=5)
    assert await budget.acquire("a")
    gone = asyncio.create_task(_ask(budget, "a"))
    next_one = asyncio.create_task(_ask(budget, "b"))
    await asyncio.sleep(0.1)
    gone.cancel()
    assert await next_one == ("b", True) and loop.time() == pytest.approx(1)
    assert not budget.waiting


async def test_the_review_is_charged_to_the_namespace_the_signed_subject_names():
    reviewer, clock = FakeReviewer(), Clock()
    check = verifier(index_with_account(), reviewer, clock)
    charged = []

    async def acquire(namespace: str) -> bool:
        charged.append(namespace)
        return namespace != "flood"
    check.budget.acquire = acquire
    token = reviewer.accept(sa_token(), "system:serviceaccount:team:parca-agent")
    assert (await check.verify(token)).status == 200
    verdict = await check.verify(sa_token(name="x", namespace="flood"))
    assert (verdict.status, verdict.reason) == (429, "review-rate-limited")
    assert charged == ["team", "flood"] and reviewer.calls == 1


# -- forward auth -----------------------------------------------------------------------

async def test_forward_auth_names_the_account_and_the_workload():
    index, reviewer = index_with_account(), FakeReviewer()
    token = reviewer.accept(sa_token(), "system:serviceaccount:team:parca-agent")
    authenticator = Authenticator(Settings(), index, workloads=verifier(index, reviewer, Clock()))
    runner = web.AppRunner(authenticator.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{runner.addresses[0][1]}") as session:
            headers = {"Authorization": f"Bearer {token}"}
            async with session.get("/verify?permission=write:profiles", headers=headers) as response:
                assert response.status == 200
                assert response.headers["X-Auth-Subject"] == "tokenwarden:team:serviceaccount:agents"
                assert response.headers["X-Auth-Roles"] == "profile-writer"
                assert response.headers["X-Auth-Via"] == "workload:parca-agent"
            async with session.get("/verify?permission=read", headers=headers) as response:
                assert response.status == 403 and (await response.json())["reason"] == "permission"
            # The TokenReview webhook does not take workload tokens: kube-apiserver checks its own.
            async with session.post("/apis/authentication.k8s.io/v1/tokenreviews",
                                    json={"spec": {"token": token}}) as response:
                assert (await response.json())["status"]["authenticated"] is False
        assert reviewer.calls == 1
        assert set(authenticator.last_used.pending) == {("ServiceAccount", "team", "agents")}
    finally:
        await runner.cleanup()


async def test_a_reused_verdict_follows_every_change_of_the_account_and_its_listing():
    """The verifier reuses bind's verdict while the index holds the same account and grant
    objects: each change (a binding, disabled, a second account listing the same ServiceAccount)
    replaces one."""
    index, reviewer, clock = index_with_account(), FakeReviewer(), Clock()
    check = verifier(index, reviewer, clock)
    token = reviewer.accept(sa_token(), "system:serviceaccount:team:parca-agent")
    first = await check.verify(token)
    assert first.status == 200 and first.identity.roles == ("profile-writer",)
    assert await check.verify(token) is first  # nothing changed: the same verdict
    index.put_binding(("team", "agents-read"), "agents", Binding(("reader",)))
    assert (await check.verify(token)).identity.roles == ("profile-writer", "reader")
    index.put_binding(("team", "agents-profiles"), "agents", None)  # being deleted: grants nothing
    assert (await check.verify(token)).identity.roles == ("reader",)
    index.put_account(("team", "other"), Account(uid="uid-other", workloads=("parca-agent",)))
    assert (await check.verify(token)).reason == "ambiguous"
    index.drop_account(("team", "other"))
    assert (await check.verify(token)).identity.roles == ("reader",)
    index.drop_binding(("team", "agents-read"))
    assert (await check.verify(token)).identity.roles == ()
    index.put_account(("team", "agents"), Account(uid="uid-agents", workloads=("parca-agent",), deleting=True))
    assert (await check.verify(token)).reason == "deleted"
    assert reviewer.calls == 1


def test_the_account_store_indexes_workloads_and_the_binding_store_roles():
    """Workloads from the account's body; roles from its bindings, never from the account's
    status.effectiveRoles, which only the operator writes."""
    from tokenwarden.authn._bindings import BindingStore
    from tokenwarden.authn._watch import AccountStore

    index, forgotten = TokenIndex(), []
    store, bindings = AccountStore(index, forgotten.append), BindingStore(index)
    body = {"metadata": {"namespace": "team", "name": "agents", "uid": "u-1"},
            "spec": {"workloadIdentities": [{"serviceAccountName": "parca-agent"}, {"bogus": 1}]},
            "status": {"effectiveRoles": ["admin"]}}
    store.put(*store.record(body))
    assert index.workloads == {("team", "parca-agent"): {"agents"}}
    assert bind(index, ("team", "parca-agent")).identity.roles == ()
    binding = {"metadata": {"namespace": "team", "name": "agents-profiles"},
               "spec": {"serviceAccountName": "agents", "roles": ["profile-writer"]}}
    bindings.put(*bindings.record(binding))
    assert bind(index, ("team", "parca-agent")).identity.roles == ("profile-writer",)
    binding["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z"  # held by someone's finalizer
    bindings.put(*bindings.record(binding))
    assert bind(index, ("team", "parca-agent")).identity.roles == ()
    store.drop(("team", "agents"))
    assert index.workloads == {} and forgotten == [("ServiceAccount", "team", "agents")]
