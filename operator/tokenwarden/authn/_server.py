"""The authenticator's HTTP endpoints: forward auth and TokenReview on the public port; health
and metrics on a port of their own."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import replace
from datetime import datetime, timezone

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tokenwarden.authn._access_log import AccessLog
from tokenwarden.authn._credentials import DEFAULT_SCHEMES, extract_token
from tokenwarden.authn._jwt import looks_like_jwt
from tokenwarden.authn._index import Identity, TokenIndex
from tokenwarden.authn._metrics import (
    CREDENTIAL_VERIFICATIONS,
    LAST_USED_WRITES,
    RESPONSES,
    VERIFICATIONS,
    CredentialVerifications,
)
from tokenwarden.authn._reflector import Readiness
from tokenwarden.authn._verify import Verdict, authorize, verify
from tokenwarden.authn._workload import WorkloadVerifier
from tokenwarden.config import Settings

logger = logging.getLogger("tokenwarden.authenticator")

PROJECT_HEADERS = ("projectID", "X-Project-ID")
CHALLENGE = 'Bearer realm="tokenwarden", ApiKey realm="tokenwarden"'
# A TokenReview is a token (4 KiB at most, a projected one about 1 KiB) and a few audiences; the
# public port reads no larger body (aiohttp's default is 1 MiB).
MAX_BODY = 64 * 1024
REVIEW_VERSIONS = ("authentication.k8s.io/v1", "authentication.k8s.io/v1beta1")
REVIEW_EXPECTED = "expected a TokenReview with spec.token (and optional spec.audiences, a list of strings)"


def _project_header(headers) -> str | None:
    for name in PROJECT_HEADERS:
        value = headers.get(name)
        if value is not None:
            return value
    return None


def _now() -> datetime:
    return datetime.now(timezone.utc)


class LastUsed:
    """Uses recorded in memory on the request path; written to the namespace's TokenUsage
    in batches, off it. A pending None removes a deleted credential's entry."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.pending: dict[tuple[str, str, str], datetime | None] = {}
        self.written: dict[tuple[str, str, str], datetime] = {}

    def record(self, identity: Identity, now: datetime) -> None:
        self.pending[(identity.kind, identity.namespace, identity.name)] = now

    def forget(self, key: tuple[str, str, str]) -> None:
        """The credential is gone: drop its entry (and write its removal)."""
        self.written.pop(key, None)
        self.pending[key] = None

    def due(self) -> dict[tuple[str, str, str], datetime | None]:
        """Uses worth writing now: at most one write per token per interval."""
        batch, self.pending = self.pending, {}
        due = {}
        for key, used in batch.items():
            last = self.written.get(key)
            if used is None or last is None or (used - last).total_seconds() >= self.interval:
                due[key] = used
            else:
                self.pending[key] = used  # keep it for a later batch
        return due


class Authenticator:
    def __init__(self, settings: Settings, index: TokenIndex, *, extra_schemes: tuple[str, ...] = (),
                 last_used: LastUsed | None = None, readiness: Readiness | None = None,
                 workloads: WorkloadVerifier | None = None,
                 verifications: CredentialVerifications = CREDENTIAL_VERIFICATIONS,
                 access_log: AccessLog | None = None) -> None:
        """``readiness`` says when the index is loaded; without it, the caller has filled it.
        ``workloads`` checks Kubernetes service-account tokens at /verify; None: they are unknown."""
        self.settings = settings
        self.index = index
        self.schemes = frozenset(DEFAULT_SCHEMES + tuple(s.lower() for s in extra_schemes))
        self.prefixes = (settings.prefixes.service_token, settings.prefixes.ingestion_key)
        self.last_used = last_used or LastUsed(60.0)
        self.readiness = readiness or Readiness()
        self.workloads = workloads
        self.verifications = verifications  # per credential, bounded
        self.access_log = access_log  # None: no access log, and no cost

    def _starting(self, endpoint: str) -> web.Response | None:
        """503 until the index is loaded: a token missing from a half-loaded index is not unknown."""
        if self.readiness.loaded():
            return None
        self._count(endpoint, "starting")
        return web.json_response({"allowed": False, "reason": "starting"}, status=503, headers={"Retry-After": "1"})

    def check(self, token: str | None, permission: str | None, project: str | None, endpoint: str,
              audiences: list[str] | None = None) -> Verdict:
        started = time.perf_counter()
        now = _now()
        verdict = verify(token, self.index, self.settings.roles, now=now, prefixes=self.prefixes,
                         permission=permission, project=project, audiences=audiences,
                         default_audiences=self.settings.audiences)
        identity = verdict.identity
        if identity is not None:
            self.verifications.record(identity.namespace, identity.kind, identity.name, verdict.reason)
            if verdict.status != 401:
                self.last_used.record(identity, now)
        VERIFICATIONS.observe(endpoint, time.perf_counter() - started)
        self._count(endpoint, verdict.reason)
        return verdict

    def _count(self, endpoint: str, reason: str) -> None:
        VERIFICATIONS.count(endpoint, reason)

    # -- endpoints -----------------------------------------------------------
    async def forward_auth(self, request: web.Request) -> web.Response:
        if (starting := self._starting("verify")) is not None:
            return starting
        query = request.query if request.query_string else {}
        headers = request.headers
        project = query.get("project") or _project_header(headers)
        token = extract_token(headers, self.schemes)
        if self.workloads is not None and token and looks_like_jwt(token) and self.index.lookup(token) is None:
            verdict = await self.check_workload(token, query.get("permission"), project)
        else:
            verdict = self.check(token, query.get("permission"), project, "verify")
        if self.access_log is not None:
            self.access_log.record(verdict, request, "verify")
        if verdict.status == 401:
            return web.json_response({"allowed": False, "reason": verdict.reason}, status=401,
                                     headers={"WWW-Authenticate": CHALLENGE})
        if verdict.status != 200:  # 403; a workload's 429 or 503: try again shortly
            retry = {"Retry-After": "1"} if verdict.status in (429, 503) else None
            return web.json_response({"allowed": False, "reason": verdict.reason}, status=verdict.status,
                                     headers=retry)
        subject = verdict.identity.subject
        answer = {"X-Auth-Subject": subject, "X-Auth-Roles": ",".join(verdict.roles),
                  "Content-Type": "application/json; charset=utf-8"}
        if verdict.project:
            answer["X-Auth-Project"] = verdict.project
        if verdict.via:
            answer["X-Auth-Via"] = verdict.via
        # Bytes with the Content-Type header given: text= would parse that header again (a third
        # of what this handler cost).
        return web.Response(body=f'{{"allowed": true, "subject": "{subject}"}}'.encode(), headers=answer)

    async def check_workload(self, token: str, permission: str | None, project: str | None) -> Verdict:
        """A Kubernetes service-account token at /verify: reviewed by kube-apiserver (cached),
        then granted its account's roles as that account's tokens are."""
        started = time.perf_counter()
        found = await self.workloads.verify(token)
        via = f"workload:{found.service_account}" if found.service_account else None
        if found.status == 200:
            verdict = authorize(found.identity, self.settings.roles, permission, project, via)
            if verdict.status != 401:
                self.last_used.record(found.identity, _now())
            if verdict.via != via:  # a 403 names how, too
                verdict = replace(verdict, via=via)
        else:
            verdict = Verdict(found.status, found.reason, found.identity, via=via)
        VERIFICATIONS.observe("verify", time.perf_counter() - started)
        self._count("verify", verdict.reason)
        return verdict

    async def token_review(self, request: web.Request) -> web.Response:
        if (starting := self._starting("tokenreview")) is not None:
            return starting
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _failure(413, f"the body is larger than {MAX_BODY} bytes: {REVIEW_EXPECTED}")
        try:
            review = json.loads(body)
        except RecursionError:  # JSON nested about a thousand deep: the parser refuses by raising it
            return _failure(400, f"the body is JSON nested too deeply: {REVIEW_EXPECTED}")
        except ValueError:  # not JSON, or not UTF-8 (UnicodeDecodeError is a ValueError)
            return _failure(400, f"the body is not JSON: {REVIEW_EXPECTED}")
        try:
            token = review["spec"]["token"]
            audiences = review["spec"].get("audiences") or []
            if not isinstance(token, str):
                raise TypeError("spec.token is not a string")
            if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
                raise TypeError("spec.audiences is not a list of strings")
        except (KeyError, TypeError, AttributeError):
            return _failure(400, REVIEW_EXPECTED)
        # Echoed only when it is one we answer: never a value of the caller's choosing.
        api_version = review.get("apiVersion") if review.get("apiVersion") in REVIEW_VERSIONS \
            else "authentication.k8s.io/v1"
        # tokenwarden tokens only: a Kubernetes service-account token is kube-apiserver's own to
        # check, and reviewing it here would send kube-apiserver's review back to kube-apiserver.
        verdict = self.check(token, None, None, "tokenreview", audiences)
        if self.access_log is not None:
            self.access_log.record(verdict, request, "tokenreview")
        status: dict = {"authenticated": verdict.allowed}
        if verdict.allowed:
            identity = verdict.identity
            status["user"] = {
                "username": identity.subject,
                "uid": f"{identity.namespace}/{identity.kind}/{identity.name}",
                # Only roles admission let the token's author grant, and named with the namespace:
                # `bind` on a role in one namespace must not reach RBAC bound in another.
                "groups": ["tokenwarden:authenticated",
                           *(f"tokenwarden:{identity.namespace}:role:{r}" for r in verdict.roles)],
                "extra": {"tokenwarden.io/token": [identity.name]},
            }
            status["audiences"] = list(verdict.audiences)
        elif verdict.reason == "not-kubernetes":
            status["error"] = "token rejected: ingestion API keys are not Kubernetes credentials"
        elif verdict.reason == "audience":
            wanted = ", ".join(audiences or self.settings.audiences)
            status["error"] = f"token rejected: not valid for the audience(s) {wanted}"
        else:
            status["error"] = f"token rejected: {verdict.reason}"
        return web.json_response({"apiVersion": api_version, "kind": "TokenReview", "status": status})

    async def healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(self, _: web.Request) -> web.Response:
        """503 until the index is loaded, and while a watch has been broken too long (verification
        goes on from the last index meanwhile)."""
        problems = self.readiness.problems()
        return web.Response(text="; ".join(problems) or "ok", status=503 if problems else 200)

    async def metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def app(self) -> web.Application:
        """The public port: verification only, bodies of MAX_BODY bytes at most."""
        app = web.Application(client_max_size=MAX_BODY, middlewares=[count_responses])
        app.router.add_route("*", "/verify", self.forward_auth)
        app.router.add_route("*", "/verify/{tail:.*}", self.forward_auth)
        app.router.add_post("/apis/authentication.k8s.io/v1/tokenreviews", self.token_review)
        return app

    def metrics_app(self) -> web.Application:
        """The port of its own for probes and Prometheus, never exposed with the public one."""
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        return app


def _endpoint(path: str) -> str:
    if path.startswith("/verify"):
        return "verify"
    return "tokenreview" if path == "/apis/authentication.k8s.io/v1/tokenreviews" else "other"


@web.middleware
async def count_responses(request: web.Request, handler) -> web.StreamResponse:
    """Count each answer of the public port by endpoint and status: a handler that fails is a 500."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # aiohttp's own answers: 404, 405, 413
        RESPONSES.count(_endpoint(request.path), exc.status)
        raise
    except Exception:
        RESPONSES.count(_endpoint(request.path), 500)
        raise
    RESPONSES.count(_endpoint(request.path), response.status)
    return response


def _failure(code: int, message: str) -> web.Response:
    """A Kubernetes Status for a request that is no TokenReview: what is wrong, and what is expected."""
    return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                              "code": code}, status=code)


async def flush_last_used(last_used: LastUsed, write, stop: asyncio.Event) -> None:
    """Every interval, write the due uses, one ``write(namespace, {(kind, name): when})``
    per namespace (in a thread); a failed write is retried with the next batch."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=last_used.interval)
        except asyncio.TimeoutError:
            pass
        by_namespace: dict[str, dict[tuple[str, str], datetime | None]] = {}
        for (kind, namespace, name), used in last_used.due().items():
            by_namespace.setdefault(namespace, {})[(kind, name)] = used
        for namespace, uses in by_namespace.items():
            try:
                await asyncio.to_thread(write, namespace, uses)
                LAST_USED_WRITES.labels(result="ok").inc()
            except Exception as exc:
                LAST_USED_WRITES.labels(result="error").inc()
                for (kind, name), used in uses.items():
                    last_used.pending.setdefault((kind, namespace, name), used)
                logger.warning("could not record last use in namespace %s: %s", namespace, exc)
                continue
            for (kind, name), used in uses.items():
                if used is not None:
                    last_used.written[(kind, namespace, name)] = used
