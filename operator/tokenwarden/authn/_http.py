"""aiohttp, minus the echo: a malformed request gets a bare 4xx.

aiohttp answers a request it cannot parse (a 1 MB header, say) with a body that
quotes the offending bytes and logs the same at ERROR. Those bytes are often a
token, so the authenticator answers with the status line only and logs nothing
of the content.
"""
from __future__ import annotations

import logging
from http import HTTPStatus

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

logger = logging.getLogger("tokenwarden.authenticator")


class _QuietRequestHandler(RequestHandler):
    def handle_error(self, request, status=500, exc=None, message=None):
        if status >= 500:
            return super().handle_error(request, status, exc, None)
        logger.debug("refused a malformed request from %s with %d", request.remote, status)
        response = web.Response(status=status, text=f"{status} {HTTPStatus(status).phrase}\n")
        response.force_close()
        return response


class _QuietServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _QuietRequestHandler(self, loop=self._loop, **self._kwargs)


class QuietAppRunner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _QuietServer  # same state, only the handler class differs
        return server
