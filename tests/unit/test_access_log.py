"""The authenticator's access log: the fields of each line, sampling, and never a token."""
from __future__ import annotations

import io
import json

import aiohttp
import pytest
from aiohttp import web

from tokenwarden.authn import Authenticator, TokenIndex
from tokenwarden.authn._access_log import AccessLog, clean_path
from tokenwarden.config import Settings
from tokenwarden.tokens import hash_token, mint_token

from .test_authn import identity, with_accounts


class Sampled:
    """A random source that answers from a list: what the sampler draws, in turn."""

    def __init__(self, *draws: float) -> None:
        self.draws = list(draws)

    def __call__(self) -> float:
        return self.draws.pop(0)


@pytest.fixture
async def logged():
    """The real endpoints on a loopback port, with an access log kept in memory."""
    index = TokenIndex()
    stream = io.StringIO()
    log = AccessLog(stream, success_rate=0.5, sample=Sampled(0.7, 0.2, 0.1))
    runner = web.AppRunner(Authenticator(Settings(), index, access_log=log).app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    async with aiohttp.ClientSession(f"http://127.0.0.1:{runner.addresses[0][1]}") as session:
        yield index, session, stream
    await runner.cleanup()


async def test_each_line_says_who_what_and_from_where_and_never_the_token(logged):
    index, session, stream = logged
    token, stranger = mint_token("twst"), mint_token("twst")
    index.put(identity(name="ci", token_id="100000000000042"), [(hash_token(token), None)])
    with_accounts(index, "agents")
    proxy = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Uri": f"/api/push?api_key={token}"}

    for credential in (token, token, stranger):  # successes: the first is sampled out (0.7 >= 0.5)
        async with session.get("/verify", headers={"Authorization": f"Bearer {credential}", **proxy}) as answer:
            await answer.read()
    async with session.get(f"/verify/{token}", headers={"X-API-Key": token}) as answer:
        assert answer.status == 200
    async with session.post("/apis/authentication.k8s.io/v1/tokenreviews",
                            json={"spec": {"token": stranger}}) as answer:
        await answer.read()

    text = stream.getvalue()
    assert token not in text and stranger not in text and hash_token(token) not in text
    lines = [json.loads(line) for line in text.splitlines()]
    ok, unknown, direct, review = lines
    assert len(lines) == 4 and all(line["time"].endswith("Z") for line in lines)
    assert {k: v for k, v in ok.items() if k != "time"} == {
        "endpoint": "verify", "status": 200, "result": "ok", "subject": "tokenwarden:team:serviceaccount:agents",
        "kind": "ServiceToken", "namespace": "team", "name": "ci", "tokenId": "100000000000042",
        "client": "127.0.0.1", "forwardedFor": "203.0.113.9", "path": "/api/push"}
    assert unknown["status"] == 401 and unknown["result"] == "unknown" and unknown["subject"] is None
    assert "tokenId" not in unknown and unknown["path"] == "/api/push"
    # Kept (drew 0.1 < 0.5), asked directly: a token-shaped path segment is masked.
    assert direct["result"] == "ok" and direct["path"] == "/verify/<token>" and "forwardedFor" not in direct
    assert review["endpoint"] == "tokenreview" and review["result"] == "unknown"


def test_paths_keep_no_query_and_no_token():
    token = mint_token("twik")
    assert clean_path(f"https://shop.example/v1/{token}/push?key={token}#x") == "https://shop.example/v1/<token>/push"
    assert len(clean_path("/" + "a" * 5000)) == 512


def test_without_an_access_log_nothing_is_written():
    authenticator = Authenticator(Settings(), TokenIndex())
    assert authenticator.access_log is None
