"""Stop an HTTP server without failing a request sent on a kept-alive connection.

Clients keep connections alive: the API server calling the admission webhook, or asking the
authenticator to review a token. A client that sends a request on a connection at the moment
the server closes it gets EOF; the API server does not send a POST again, so an admission
request that meets a stopping replica is a refused write. Taking the pod out of the Service's
endpoints does not help with these connections: they go on to the same pod, whatever
kube-proxy does with new ones.

HTTP/1.1 has one way to end a kept-alive connection with no race: answer its next request
with ``Connection: close``, after which the client does not use it again. So a stopping
server drains first: for a few seconds it goes on listening and answering, and every answer
closes its connection. Only then does it close the listener and the connections that stayed
idle all along, which the client has little reason to pick at that moment.
"""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web

logger = logging.getLogger("tokenwarden.draining")

DRAIN_SECONDS = 2.0


class Drain:
    """Once started, every answer of the servers it is a middleware of closes its connection."""

    def __init__(self, seconds: float = DRAIN_SECONDS) -> None:
        self.seconds = seconds
        self.started = False

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as answer:  # an error answer closes its connection too
            if self.started:
                answer.force_close()
            raise
        if self.started:
            response.force_close()
        return response

    async def stop(self, runner: web.BaseRunner, name: str) -> None:
        """Drain for ``seconds``, answering every request with ``Connection: close``, then stop
        ``runner`` (in-flight requests are finished first, as aiohttp's shutdown does)."""
        if self.seconds > 0:
            self.started = True
            logger.info(f"{name}: draining for {self.seconds:g} s before it stops (every answer now "
                        "closes its connection)")
        try:
            await asyncio.sleep(self.seconds)
        finally:  # cancelled again meanwhile: stop at once
            await runner.cleanup()
