"""The admission webhook's HTTPS server, as kopf's public server protocol asks of one.

kopf's own server (kopf.WebhookServer) closes every connection the moment the operator stops,
and the API server, which keeps connections to the webhook alive, then meets EOF on a request
it already sent: a refused write in the middle of a rolling update. This one drains first
(tokenwarden.draining) and keeps idle connections longer than the API server does, so that
it is the API server that closes them.

kopf sends each request to ``fn`` and gets the review's answer back; what this server adds is
TLS (a context given, which can follow a renewed certificate), the listening socket and the
URL and CA bundle it hands kopf for a webhook configuration it manages.
"""
from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging
import ssl
from collections.abc import AsyncIterator

import kopf
from aiohttp import web

from tokenwarden.draining import Drain

logger = logging.getLogger("tokenwarden.admission")

# Longer than Go's idle connection timeout (90 s, the API server's transports): an idle
# connection is closed by the client, never by the server at a moment the client picks it.
KEEPALIVE_SECONDS = 120.0


def webhook_url(host: str, port: int) -> str:
    try:
        host = f"[{ipaddress.IPv6Address(host)}]"
    except ValueError:
        pass
    return f"https://{host}" if port == 443 else f"https://{host}:{port}"


class AdmissionServer:
    """Serves kopf's admission function over HTTPS on ``bind``:``port``; drains on stop."""

    def __init__(self, *, bind: str, port: int, host: str, context: ssl.SSLContext, cadata: bytes | None,
                 drain_seconds: float) -> None:
        self.bind, self.port, self.host = bind, port, host
        self.context, self.cadata = context, cadata
        self.drain = Drain(drain_seconds)

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        drain = self.drain

        async def review(request: web.Request) -> web.Response:
            try:
                data = json.loads(await request.text())
            except ValueError as exc:
                return web.Response(status=400, text=f"the body is not JSON: {exc}")
            sslpeer = request.transport.get_extra_info("peercert") if request.transport else None
            try:
                answer = await fn(data, webhook=request.match_info["id"], sslpeer=sslpeer,
                                  headers=dict(request.headers))
            except Exception as exc:  # kopf's word on a request it cannot take (no such resource, no uid)
                logger.warning(f"refused an admission request: {exc}")
                return web.Response(status=400, text=f"{exc}")
            return web.json_response(answer)

        app = web.Application(middlewares=[drain.middleware])
        app.router.add_post("/{id:.*}", review)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, keepalive_timeout=KEEPALIVE_SECONDS)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.bind or None, self.port, ssl_context=self.context,
                              reuse_address=True).start()
        except BaseException:
            await runner.cleanup()
            raise
        logger.debug(f"serving admission reviews on {self.bind}:{self.port}")
        config = kopf.WebhookClientConfig(url=webhook_url(self.host, self.port))
        if self.cadata is not None:
            config["caBundle"] = base64.b64encode(self.cadata).decode("ascii")
        try:
            yield config
            await asyncio.Event().wait()  # until kopf stops: cancelled
        finally:
            await drain.stop(runner, "the admission webhook")


def admission_server(options, context: ssl.SSLContext, cadata: bytes | None) -> AdmissionServer:
    """The server the operator's options (handlers.OperatorOptions) ask for."""
    return AdmissionServer(bind=options.webhook_bind, port=options.webhook_port, host=options.webhook_host,
                           context=context, cadata=cadata, drain_seconds=options.webhook_drain_seconds)
