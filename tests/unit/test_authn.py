from __future__ import annotations

import asyncio
import base64
import logging
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from aiohttp import web

from tokenwarden.authn import Account, Authenticator, Identity, LastUsed, TokenIndex, extract_token, verify
from tokenwarden.authn._server import flush_last_used
from tokenwarden.config import Settings
from tokenwarden.policies import Binding
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
    return with_accounts(index, "agents")


def with_accounts(index: TokenIndex, *names: str) -> TokenIndex:
    """The accounts the tests' tokens belong to, in namespace team (a token whose account is
    missing is refused), each bound to writer everywhere and reader in project shop (a token
    carries what of its spec.roles they grant)."""
    for name in names:
        index.accounts[("team", name)] = Account(uid=f"uid-{name}")
        index.put_binding(("team", f"{name}-writer"), name, Binding(("writer",)))
        index.put_binding(("team", f"{name}-reader-shop"), name, Binding(("reader",), "shop"))
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
    {"Authorization": "Basic \x80"}, {"Authorization": "Basic dXNlcjrpc3Nv"},  # found by tests/fuzz
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
    assert check(token, index).identity.subject == "tokenwarden:team:serviceaccount:agents"
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
    index.accounts[("team", "agents")] = Account(uid="uid-agents", disabled=True)
    assert check(token, index).reason == "disabled"


def test_projects():
    token = mint_token("twst")
    index = index_with(token, identity(roles=("reader",)))  # bound within project shop only
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


def test_the_index_keys_raw_digests_and_forgets_both_hashes_of_a_rotation():
    old, new = mint_token("twst"), mint_token("twst")
    index = index_with(new, identity(), previous=(old, NOW + timedelta(minutes=5)))
    assert all(len(key) == 32 for key in index.by_hash)
    index.remove("ServiceToken", "team", "ci")
    assert check(new, index).reason == check(old, index).reason == "unknown" and not index.by_hash


@pytest.mark.parametrize("stored", [
    "sha256:" + "ab" * 31, "sha256:" + "zz" * 32, "sha256:68" + "00" * 32, "md5:" + "00" * 16, "",
])
def test_a_malformed_hash_in_a_status_matches_no_token(stored):
    index = with_accounts(TokenIndex(), "agents")
    index.put(identity(), [(stored, None)])
    assert all(key.startswith(b"?") for key in index.by_hash)  # neither a sha256's key nor an HMAC's


@pytest.mark.parametrize("token", ["x" * 1_000_000, "twst_\u00e9t\u00e9", "abc\x00def", "tab\there", ""])
def test_hostile_strings_are_clean_401s(token):
    verdict = check(token, TokenIndex())
    assert verdict.status == 401 and verdict.reason in ("malformed", "missing")


def test_foreign_formats_go_to_the_lookup():
    key = "glsa_" + "x" * 32
    index = index_with(key, identity())
    assert check(key, index).status == 200


def test_subjects_name_the_kind_so_they_cannot_collide():
    assert identity(name="x", account="deployer").subject == "tokenwarden:team:serviceaccount:deployer"
    assert identity(name="deployer", account=None).subject == "tokenwarden:team:token:deployer"
    assert identity(kind="IngestionAPIKey", name="deployer", account=None).subject == \
        "tokenwarden:team:ingestionapikey:deployer"


def test_a_project_key_is_refused_for_another_project():
    key = mint_token("twik")
    index = index_with(key, identity(kind="IngestionAPIKey", account=None, roles=(), project="team-a"))
    other = check(key, index, permission="ingest", project="team-b")
    assert (other.status, other.reason, other.project) == (403, "project", None)
    own = check(key, index, permission="ingest", project="team-a")
    assert (own.status, own.project) == (200, "team-a")
    # Naming no project: the key's own one, the only one it is authorised for.
    assert check(key, index, permission="ingest").project == "team-a"


def test_an_unscoped_key_is_valid_for_every_project_and_echoes_only_the_requested_one():
    key = mint_token("twik")
    index = index_with(key, identity(kind="IngestionAPIKey", account=None, roles=()))
    assert check(key, index, permission="ingest", project="team-b").project == "team-b"
    assert check(key, index, permission="ingest").project is None


@pytest.mark.parametrize("project", ["x,admin", "evil@shop", "Shop", "a b", "-x", "x" * 64, ""])
def test_a_project_that_is_not_a_dns_label_is_never_authorised(project):
    key, token = mint_token("twik"), mint_token("twst")
    index = index_with(key, identity(kind="IngestionAPIKey", name="k", account=None, roles=()))
    index.put(identity(roles=("writer",)), [(hash_token(token), None)])
    for credential in (key, token):
        verdict = check(credential, index, project=project)
        assert (verdict.status, verdict.reason, verdict.project) == (403, "project", None)


def test_service_token_project_header_only_for_a_project_its_roles_cover():
    token = mint_token("twst")
    scoped = index_with(token, identity(roles=("reader",)))  # bound within project shop only
    assert check(token, scoped, project="shop").project == "shop"
    assert check(token, scoped).project is None
    assert check(token, scoped, project="other").status == 403


def review(token, index, audiences=(), default=("tokenwarden",)):
    return check(token, index, audiences=list(audiences), default_audiences=list(default))


def test_review_audiences():
    token = mint_token("twst")
    plain = index_with(token, identity())
    assert review(token, plain).audiences == ("tokenwarden",)
    assert review(token, plain, ["tokenwarden", "other"]).audiences == ("tokenwarden",)
    refused = review(token, plain, ["https://kubernetes.default.svc"])
    assert (refused.status, refused.reason) == (403, "audience")
    kube = index_with(token, identity(audiences=("https://kubernetes.default.svc", "vault")))
    assert review(token, kube, ["https://kubernetes.default.svc"]).audiences == ("https://kubernetes.default.svc",)
    # A token with audiences of its own is valid for those only, not the defaults.
    assert review(token, kube).reason == "audience"
    assert review(token, kube, default=("vault",)).audiences == ("vault",)


def test_ingestion_keys_never_pass_a_review():
    key = mint_token("twik")
    index = index_with(key, identity(kind="IngestionAPIKey", account=None, roles=()))
    verdict = review(key, index)
    assert (verdict.status, verdict.reason) == (403, "not-kubernetes")


def test_a_review_still_refuses_invalid_tokens():
    token = mint_token("twst")
    assert review(token, index_with(token, identity(phase="Revoked"))).reason == "revoked"
    assert review(mint_token("twst"), index_with(token, identity())).reason == "unknown"


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


def test_a_forgotten_credential_is_due_at_once_as_a_removal():
    last_used = LastUsed(interval=60)
    key = ("ServiceToken", "team", "ci")
    last_used.written[key] = NOW
    last_used.forget(key)
    assert last_used.due() == {key: None} and key not in last_used.written
    last_used.forget(key)
    last_used.record(identity(), NOW)  # re-created and used again: the use wins
    assert last_used.due() == {key: NOW}


async def test_flush_writes_one_batch_per_namespace_and_retries_a_failed_one():
    last_used = LastUsed(interval=0.01)
    last_used.record(identity(namespace="a", name="t1"), NOW)
    last_used.record(identity(kind="IngestionAPIKey", namespace="a", name="k1"), NOW)
    last_used.record(identity(namespace="b", name="t2"), NOW)
    last_used.forget(("ServiceToken", "a", "gone"))
    writes, stop = [], asyncio.Event()

    def write(namespace, uses):
        writes.append((namespace, uses))
        if namespace == "b":
            if len(writes) < 3:
                raise RuntimeError("the API server is away")
            stop.set()

    await flush_last_used(last_used, write, stop)
    assert writes[0] == ("a", {("ServiceToken", "t1"): NOW, ("IngestionAPIKey", "k1"): NOW,
                               ("ServiceToken", "gone"): None})
    assert writes[1:] == [("b", {("ServiceToken", "t2"): NOW})] * 2
    assert last_used.written == {("ServiceToken", "a", "t1"): NOW, ("IngestionAPIKey", "a", "k1"): NOW,
                                 ("ServiceToken", "b", "t2"): NOW}


@pytest.fixture
async def served():
    """The real endpoints on a loopback port, over an index the test fills."""
    index = TokenIndex()
    authenticator = Authenticator(Settings(), index)
    runner = web.AppRunner(authenticator.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    async with aiohttp.ClientSession(f"http://127.0.0.1:{runner.addresses[0][1]}") as session:
        yield index, session
    await runner.cleanup()


async def _review(session, token, audiences=None) -> dict:
    spec = {"token": token} if audiences is None else {"token": token, "audiences": audiences}
    async with session.post("/apis/authentication.k8s.io/v1/tokenreviews",
                            json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                  "spec": spec}) as response:
        assert response.status == 200
        return (await response.json())["status"]


async def test_token_review_answers(served):
    index, session = served
    account_token, standalone, key = mint_token("twst"), mint_token("twst"), mint_token("twik")
    index.put(identity(name="t", account="deployer", roles=("writer",)), [(hash_token(account_token), None)])
    with_accounts(index, "deployer")
    index.put(identity(name="deployer", account=None, roles=("reader",), audiences=("https://kube", "tokenwarden")),
              [(hash_token(standalone), None)])
    index.put(identity(kind="IngestionAPIKey", name="deployer", account=None, roles=()), [(hash_token(key), None)])

    status = await _review(session, account_token)
    assert status["authenticated"] is True and status["audiences"] == ["tokenwarden"]
    assert status["user"]["username"] == "tokenwarden:team:serviceaccount:deployer"
    assert status["user"]["groups"] == ["tokenwarden:authenticated", "tokenwarden:team:role:writer"]

    status = await _review(session, standalone, ["https://kube"])
    assert status["user"]["username"] == "tokenwarden:team:token:deployer"
    assert status["audiences"] == ["https://kube"]

    status = await _review(session, account_token, ["https://kube"])
    assert status == {"authenticated": False, "error": "token rejected: not valid for the audience(s) https://kube"}
    status = await _review(session, key)
    assert status == {"authenticated": False,
                      "error": "token rejected: ingestion API keys are not Kubernetes credentials"}


@pytest.mark.parametrize("spec", [{"token": "t", "audiences": "tokenwarden"}, {"token": "t", "audiences": [1]}])
async def test_token_review_with_malformed_audiences_is_400(served, spec):
    _, session = served
    async with session.post("/apis/authentication.k8s.io/v1/tokenreviews", json={"spec": spec}) as response:
        assert response.status == 400
        assert "spec.audiences" in (await response.json())["message"]


DEEP = 6000  # far past the JSON parser's recursion limit


@pytest.mark.parametrize("body, words", [
    (b"[" * DEEP + b"]" * DEEP, "nested too deeply"),
    (b'{"spec": {"token": "t", "audiences": ' + b"[" * DEEP + b"]" * DEEP + b"}}", "nested too deeply"),
    (b'{"spec": {"token": "\xff\xfe"}}', "not JSON"),
    (b"{not json", "not JSON"),
    (b"", "not JSON"),
    (b"null", "spec.token"),
    (b'{"spec": "token"}', "spec.token"),
    (b'{"spec": {"token": "t"}, "apiVersion": "authentication.k8s.io/v1"}' + b" " * (64 * 1024), "larger than"),
])
async def test_a_malformed_token_review_is_a_clear_4xx_and_logs_no_error(served, caplog, body, words):
    _, session = served
    async with session.post("/apis/authentication.k8s.io/v1/tokenreviews", data=body,
                            headers={"Content-Type": "application/json"}) as response:
        assert response.status in (400, 413)
        answer = await response.json()
    assert answer["kind"] == "Status" and answer["code"] == response.status
    assert words in answer["message"] and "TokenReview with spec.token" in answer["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


async def test_a_token_review_answers_in_its_own_version_and_no_other(served):
    _, session = served
    for sent, answered in (("authentication.k8s.io/v1beta1", "authentication.k8s.io/v1beta1"),
                           ({"injected": True}, "authentication.k8s.io/v1"), ("<script>", "authentication.k8s.io/v1")):
        async with session.post("/apis/authentication.k8s.io/v1/tokenreviews",
                                json={"apiVersion": sent, "spec": {"token": "twst_unknown"}}) as response:
            assert response.status == 200
            answer = await response.json()
        assert answer["apiVersion"] == answered and answer["status"]["authenticated"] is False


async def test_forward_auth_sends_only_an_authorised_project(served):
    index, session = served
    key = mint_token("twik")
    index.put(identity(kind="IngestionAPIKey", name="k", account=None, roles=(), project="team-a"),
              [(hash_token(key), None)])
    headers = {"X-API-Key": key}
    async with session.get("/verify?permission=ingest&project=team-b", headers=headers) as response:
        assert response.status == 403 and "X-Auth-Project" not in response.headers
        assert (await response.json())["reason"] == "project"
    async with session.get("/verify?permission=ingest", headers={**headers, "projectID": "team-a"}) as response:
        assert response.status == 200 and response.headers["X-Auth-Project"] == "team-a"
    async with session.get("/verify", headers=headers) as response:
        assert response.headers["X-Auth-Project"] == "team-a"
        assert response.headers["X-Auth-Subject"] == "tokenwarden:team:ingestionapikey:k"


def test_verification_counts_and_times_read_as_prometheus_counters_and_a_histogram():
    from prometheus_client import CollectorRegistry, generate_latest

    from tokenwarden.authn._metrics import Verifications

    verifications, registry = Verifications(), CollectorRegistry()
    registry.register(verifications)
    verifications.count("verify", "ok")
    verifications.count("verify", "ok")
    for seconds in (0.0001, 0.0003, 2.0):
        verifications.observe("verify", seconds)
    text = generate_latest(registry).decode()
    assert 'tokenwarden_verifications_total{endpoint="verify",result="ok"} 2.0' in text
    # The histogram, and the same under its deprecated name of earlier releases.
    for name in ("tokenwarden_verify_duration_seconds", "tokenwarden_verify_seconds"):
        assert f'{name}_bucket{{endpoint="verify",le="0.0001"}} 1.0' in text  # bounds are inclusive
        assert f'{name}_bucket{{endpoint="verify",le="0.0005"}} 2.0' in text
        assert f'{name}_bucket{{endpoint="verify",le="+Inf"}} 3.0' in text
        assert f'{name}_count{{endpoint="verify"}} 3.0' in text


async def test_answers_of_the_public_port_are_counted_by_endpoint_and_status(served, monkeypatch):
    from tokenwarden.authn import _metrics

    responses = _metrics.Responses()
    monkeypatch.setattr("tokenwarden.authn._server.RESPONSES", responses)
    index, session = served
    token = mint_token("twst")
    index.put(identity(name="t", account=None, roles=("writer",)), [(hash_token(token), None)])
    for headers in ({"X-API-Key": token}, {"X-API-Key": token}, {}):
        async with session.get("/verify", headers=headers):
            pass
    async with session.post("/apis/authentication.k8s.io/v1/tokenreviews", data=b"{not json"):
        pass
    async with session.get("/elsewhere"):
        pass

    def broken(*_, **__):
        raise RuntimeError("a bug")

    monkeypatch.setattr(Authenticator, "check", broken)
    async with session.get("/verify", headers={"X-API-Key": token}) as response:
        assert response.status == 500
    assert responses.counts == {("verify", 200): 2, ("verify", 401): 1, ("tokenreview", 400): 1,
                                ("other", 404): 1, ("verify", 500): 1}
