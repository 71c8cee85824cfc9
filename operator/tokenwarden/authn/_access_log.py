"""The optional access log: one JSON line per verification, for audit.

Each line holds the time, the result (the verdict's reason) and HTTP status, the subject,
the credential's kind, namespace, name and public token id, the client's address (and the
X-Forwarded-For a proxy sent), the path asked about, and ``via`` for a workload identity.
Never the token: no header value but X-Forwarded-For is read, and a path keeps neither its
query string nor anything shaped like a tokenwarden token. Failures are all kept; successes
at ``success_rate``.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import IO

from aiohttp import web

from tokenwarden.authn._verify import Verdict
from tokenwarden.tokens import TOKEN_REGEX

# Where a proxy doing forward auth names the request it asks about (Traefik, ingress-nginx, Envoy).
ORIGINAL_PATH = ("X-Forwarded-Uri", "X-Original-URL", "X-Envoy-Original-Path")
MAX_FIELD = 512


def clean_path(value: str) -> str:
    """A path fit for the log: no query string or fragment, no token-shaped part, bounded."""
    path = value.split("?", 1)[0].split("#", 1)[0][:MAX_FIELD]
    return TOKEN_REGEX.sub("<token>", path)


class AccessLog:
    def __init__(self, stream: IO[str], success_rate: float = 1.0,
                 sample: Callable[[], float] = random.random) -> None:
        self.stream = stream
        self.success_rate = success_rate
        self.sample = sample

    def record(self, verdict: Verdict, request: web.Request, endpoint: str) -> None:
        if verdict.status == 200 and self.success_rate < 1.0 and self.sample() >= self.success_rate:
            return
        headers = request.headers
        original = next((headers[h] for h in ORIGINAL_PATH if h in headers), None)
        entry = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "endpoint": endpoint,
            "status": verdict.status,
            "result": verdict.reason,
            "subject": None,
            "client": request.remote,
            "path": clean_path(original or request.path),
        }
        identity = verdict.identity
        if identity is not None:
            entry.update(subject=identity.subject, kind=identity.kind, namespace=identity.namespace,
                         name=identity.name, tokenId=identity.token_id)
        if "X-Forwarded-For" in headers:
            entry["forwardedFor"] = headers["X-Forwarded-For"][:MAX_FIELD]
        via = getattr(verdict, "via", None)
        if via:
            entry["via"] = via
        self.stream.write(json.dumps(entry, separators=(",", ":")) + "\n")

    def flush(self) -> None:
        self.stream.flush()


def open_access_log(target: str | None, success_rate: float = 1.0) -> AccessLog | None:
    """The access log to ``target`` ("-": stdout; else a file, appended to); None when off."""
    if not target:
        return None
    stream = sys.stdout if target == "-" else open(target, "a", encoding="utf-8")  # noqa: SIM115
    return AccessLog(stream, success_rate)


async def flush_access_log(log: AccessLog | None, stop: asyncio.Event, interval: float = 1.0) -> None:
    """Write buffered lines out every ``interval`` seconds, off the request path, and at the end."""
    if log is None:
        return
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        log.flush()
