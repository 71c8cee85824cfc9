"""The admission webhook's server stops without cutting a request sent on a kept-alive connection:
it drains first, answering with ``Connection: close``, then closes (tokenwarden.draining). Driven
as kopf drives a webhook server: an async generator, cancelled when the operator stops."""
from __future__ import annotations

import asyncio
import base64
import http.client
import json
import socket
import ssl

import pytest

from tokenwarden.devcluster import free_port
from tokenwarden.handlers._admission_server import AdmissionServer, webhook_url
from tokenwarden.tls import create_ca, issue_serving_cert


async def _allow(data, *, webhook, sslpeer, headers):
    if "request" not in data:
        raise ValueError("the admission review has no request")
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": data["request"]["uid"], "allowed": True, "status": {"message": webhook}}}


@pytest.fixture
def tls(tmp_path):
    authority = create_ca(tmp_path, "webhook-ca")
    pair = issue_serving_cert(authority, tmp_path, "tls", ["127.0.0.1"])
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pair.cert, pair.key)
    return server, authority.cert.read_bytes(), ssl.create_default_context(cafile=str(authority.cert))


def _post(connection: http.client.HTTPSConnection, body: dict, path: str = "/validate-token"):
    connection.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.getheader("Connection"), response.read()


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.01)


async def test_a_stopping_server_answers_on_kept_alive_connections_and_closes_each_after_its_answer(tls):
    context, ca, client_context = tls
    port = free_port()
    server = AdmissionServer(bind="127.0.0.1", port=port, host="127.0.0.1", context=context, cadata=ca,
                             drain_seconds=600)
    serving = server(_allow)
    config = await serving.__anext__()
    assert config["url"] == f"https://127.0.0.1:{port}"
    assert base64.b64decode(config["caBundle"]) == ca
    running = asyncio.ensure_future(serving.__anext__())

    busy = http.client.HTTPSConnection("127.0.0.1", port, context=client_context)
    idle = http.client.HTTPSConnection("127.0.0.1", port, context=client_context)
    status, connection, body = await asyncio.to_thread(_post, busy, {"request": {"uid": "1"}})
    assert (status, connection) == (200, None), "a running server keeps the connection alive"
    assert json.loads(body)["response"] == {"uid": "1", "allowed": True, "status": {"message": "validate-token"}}
    assert (await asyncio.to_thread(_post, idle, {"request": {"uid": "2"}}))[:2] == (200, None)

    running.cancel()  # the operator stops, as kopf stops its webhook server
    await _until(lambda: server.drain.started)

    # Both kept-alive connections are still answered, and told to go.
    for uid, kept in (("3", busy), ("4", idle)):
        status, connection, body = await asyncio.to_thread(_post, kept, {"request": {"uid": uid}})
        assert (status, connection) == (200, "close")
        assert json.loads(body)["response"]["uid"] == uid
        assert kept.sock is None, "the client closed the connection it was told to close"
    # A connection opened meanwhile (a client that had not seen the endpoints change) too.
    late = http.client.HTTPSConnection("127.0.0.1", port, context=client_context)
    assert (await asyncio.to_thread(_post, late, {"request": {"uid": "5"}}))[:2] == (200, "close")

    running.cancel()  # cancelled again while draining: it stops at once
    with pytest.raises(asyncio.CancelledError):
        await running
    with pytest.raises(ConnectionRefusedError):
        await asyncio.to_thread(socket.create_connection, ("127.0.0.1", port))


async def test_a_request_kopf_cannot_take_gets_400_with_the_reason_and_the_server_goes_on(tls):
    context, ca, client_context = tls
    port = free_port()
    server = AdmissionServer(bind="127.0.0.1", port=port, host="127.0.0.1", context=context, cadata=None,
                             drain_seconds=0)
    serving = server(_allow)
    config = await serving.__anext__()
    assert "caBundle" not in config
    running = asyncio.ensure_future(serving.__anext__())
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=client_context)

    status, _, body = await asyncio.to_thread(_post, connection, {"kind": "AdmissionReview"})
    assert (status, body) == (400, b"the admission review has no request")
    connection.request("POST", "/validate-token", body=b"{not json")
    refused = await asyncio.to_thread(connection.getresponse)
    assert refused.status == 400 and refused.read().startswith(b"the body is not JSON")
    assert (await asyncio.to_thread(_post, connection, {"request": {"uid": "6"}}))[0] == 200

    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    with pytest.raises(ConnectionRefusedError):
        await asyncio.to_thread(socket.create_connection, ("127.0.0.1", port))


@pytest.mark.parametrize("host, port, url", [
    ("tokenwarden-webhook.tokenwarden.svc", 443, "https://tokenwarden-webhook.tokenwarden.svc"),
    ("127.0.0.1", 9443, "https://127.0.0.1:9443"),
    ("::1", 9443, "https://[::1]:9443"),
])
def test_the_url_handed_to_kopf(host, port, url):
    assert webhook_url(host, port) == url
