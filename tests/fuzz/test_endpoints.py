"""The authenticator's public endpoints under generated requests, served as in production
(QuietAppRunner on a loopback port, with a TokenReview double for workload tokens): no 5xx,
no ERROR log, no traceback in an answer, and a valid token's answer unchanged afterwards."""
from __future__ import annotations

import asyncio
import http.client
import logging
import socket
import threading
import time

import pytest
from aiohttp.web import TCPSite
from hypothesis import event, given

from tokenwarden.authn import Authenticator
from tokenwarden.authn._http import QuietAppRunner

from .strategies import VALID_TOKEN, credential_headers, query_strings, review_bodies
from .test_parsing import INDEX, SETTINGS, WORKLOAD_TOKEN, Reviewer, workload_verifier

REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"


class Errors(logging.Handler):
    """Records logged at WARNING or above, by anyone (aiohttp logs a handler's exception at ERROR)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def server():
    """(port, errors): the public app on a loopback port, its loop in a thread of its own."""
    loop = asyncio.new_event_loop()
    workloads = workload_verifier(Reviewer(WORKLOAD_TOKEN), time.time)
    runner = QuietAppRunner(Authenticator(SETTINGS, INDEX, workloads=workloads).app(), access_log=None)
    loop.run_until_complete(runner.setup())
    site = TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    errors = Errors()
    logging.getLogger().addHandler(errors)
    yield port, errors
    logging.getLogger().removeHandler(errors)
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def _request(port: int, method: str, path: str, headers: dict[str, str], body: bytes | None = None):
    """(status, body) for a request written byte for byte: header values as UTF-8, whatever
    they hold (a client may send what http.client would refuse to)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
             *(f"{name}: {value}" for name, value in headers.items())]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    raw = "\r\n".join(lines).encode("utf-8", "surrogatepass") + b"\r\n\r\n" + (body or b"")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(raw)
        response = http.client.HTTPResponse(connection, method=method)
        response.begin()
        return response.status, response.read()


def _clean(status: int, body: bytes, errors: Errors, allowed: set[int]) -> None:
    event(f"answered {status}")  # --hypothesis-show-statistics: how the examples were answered
    assert status in allowed, (status, body[:300])
    assert b"Traceback" not in body and len(body) < 1000
    assert not errors.records, [r.getMessage() for r in errors.records]


def _valid_token_still_passes(port: int) -> None:
    assert _request(port, "GET", "/verify?permission=write", {"X-API-Key": VALID_TOKEN})[0] == 200
    assert _request(port, "GET", "/verify", {"Authorization": f"Bearer {WORKLOAD_TOKEN}"})[0] == 200


@given(headers=credential_headers(), query=query_strings())
def test_any_forward_auth_request_is_answered_without_a_5xx(server, headers, query):
    port, errors = server
    status, body = _request(port, "GET", f"/verify?{query}" if query else "/verify", headers)
    _clean(status, body, errors, {200, 400, 401, 403, 431})
    if status == 200:  # only the two valid tokens pass
        assert VALID_TOKEN in str(headers) or WORKLOAD_TOKEN in str(headers)


@given(body=review_bodies())
def test_any_token_review_body_is_answered_without_a_5xx(server, body):
    port, errors = server
    status, answer = _request(port, "POST", REVIEWS, {"Content-Type": "application/json"}, body)
    _clean(status, answer, errors, {200, 400, 413})
    if status == 200:
        assert b'"authenticated": false' in answer


def test_a_valid_token_passes_after_the_fuzzing(server):
    """Runs after the two above (pytest keeps the file's order): nothing they sent changed it."""
    port, errors = server
    _valid_token_still_passes(port)
    assert not errors.records
