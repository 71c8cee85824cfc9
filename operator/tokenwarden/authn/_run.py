"""Run the authenticator: the public HTTP(S) server, a plain-HTTP one for health and metrics,
and the watches that keep its index current."""
from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field

import kopf
from aiohttp.web import TCPSite
from kubernetes import client

from tokenwarden.authn._http import QuietAppRunner
from tokenwarden.authn._index import TokenIndex
from tokenwarden.authn._import_key import follow_import_key
from tokenwarden.authn._server import Authenticator, LastUsed, flush_last_used
from tokenwarden.authn._tls import ReloadingCertificate, watch_certificate
from tokenwarden.authn._watch import build_registry, identity_from
from tokenwarden.conditions import rfc3339
from tokenwarden.config import Settings
from tokenwarden.kube import load_api_client, objects, quiet_body_loggers, usage
from tokenwarden.kube._resources import INGESTION_KEYS, SERVICE_ACCOUNTS, SERVICE_TOKENS

logger = logging.getLogger("tokenwarden.authenticator")


@dataclass
class AuthenticatorOptions:
    settings: Settings = field(default_factory=Settings)
    host: str = "0.0.0.0"
    port: int = 8443
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_check_interval: float = 10.0
    metrics_host: str | None = None  # None: the public server's host
    metrics_port: int = 9090
    namespaces: list[str] = field(default_factory=list)
    clusterwide: bool = True
    last_used_interval: float = 60.0
    extra_schemes: tuple[str, ...] = ()
    verbose: bool = False
    debug: bool = False


def _initial_load(custom: client.CustomObjectsApi, index: TokenIndex, namespaces: list[str]) -> None:
    """List everything once before answering, so readiness means a complete index."""
    for scope in objects.listing_scopes(namespaces):
        for account in objects.iter_objects(custom, SERVICE_ACCOUNTS, scope):
            if (account.get("spec") or {}).get("disabled"):
                index.set_account_disabled(account["metadata"]["namespace"], account["metadata"]["name"], True)
        for resource in (SERVICE_TOKENS, INGESTION_KEYS):
            for body in objects.iter_objects(custom, resource, scope):
                found = identity_from(resource.kind, body)
                if found:
                    index.put(*found)


def _load_usage(custom: client.CustomObjectsApi, index: TokenIndex, last_used: LastUsed) -> None:
    """What the TokenUsage objects already say, so a restart does not write every use again;
    entries of credentials deleted meanwhile are dropped."""
    from tokenwarden import policies

    known = set(index.hashes_of)
    for namespace in sorted({namespace for _, namespace, _ in known}):
        try:
            body = usage.read_usage(custom, namespace)
        except Exception as exc:  # only an optimisation: the next use writes anyway
            logger.warning("could not read the TokenUsage of namespace %s: %s", namespace, exc)
            continue
        for (kind, name), when in usage.usage_entries(body).items():
            key = (kind, namespace, name)
            if key not in known:
                last_used.forget(key)
            elif (parsed := policies.parse_time(when)) is not None:
                last_used.written[key] = parsed


async def serve(options: AuthenticatorOptions, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    index = TokenIndex()
    last_used = LastUsed(options.last_used_interval)
    authenticator = Authenticator(options.settings, index, extra_schemes=options.extra_schemes,
                                  last_used=last_used)
    custom = client.CustomObjectsApi(load_api_client())

    registry = build_registry(index, last_used.forget)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_) -> None:
        settings.posting.enabled = False  # read-only: the authenticator posts no events
        # Memory: kopf lists everything in one response unless told to page, and keeps a worker
        # with the object's body for idle_timeout (5 s) after its last event. With 10,000 tokens
        # that is every body at once (200 MB peak); paged and let go at once, about half (bench/scale.py).
        settings.watching.chunk_size = objects.LIST_PAGE
        settings.queueing.idle_timeout = 0.1  # the handlers are dict updates: a new worker is cheap

    @kopf.on.login(registry=registry)
    def login(**kwargs):
        if os.environ.get("KUBECONFIG") or os.path.exists(os.path.expanduser("~/.kube/config")):
            return kopf.login_with_kubeconfig(**kwargs)
        return kopf.login_with_service_account(**kwargs)

    certificate = ReloadingCertificate(options.tls_cert, options.tls_key) if options.tls_cert else None
    # Health and metrics first, on a port of their own: the public port serves verification only.
    metrics_host = options.metrics_host or options.host
    metrics_runner = QuietAppRunner(authenticator.metrics_app(), access_log=None)
    await metrics_runner.setup()
    await TCPSite(metrics_runner, metrics_host, options.metrics_port).start()
    runner = QuietAppRunner(authenticator.app(), access_log=None)
    await runner.setup()
    await TCPSite(runner, options.host, options.port,
                  ssl_context=certificate.context if certificate else None).start()
    logger.info("authenticator listening on %s:%s (%s); health and metrics on http://%s:%s",
                options.host, options.port, "https" if certificate else "http", metrics_host, options.metrics_port)
    reloader = asyncio.create_task(watch_certificate(certificate, stop, options.tls_check_interval)) \
        if certificate else None

    await asyncio.to_thread(_initial_load, custom, index, options.namespaces)
    await follow_import_key(options.settings.import_key, index, stop)
    authenticator.ready = True
    logger.info("index loaded: %d token hashes", len(index))

    await asyncio.to_thread(_load_usage, custom, index, last_used)

    def write(namespace: str, uses: dict) -> None:
        status: dict = {}
        for (kind, name), when in uses.items():
            status.setdefault(usage.SECTION_OF[kind], {})[name] = rfc3339(when) if when else None
        usage.write_usage(custom, namespace, status, create=any(uses.values()))

    flusher = asyncio.create_task(flush_last_used(last_used, write, stop))
    try:
        await kopf.operator(registry=registry, standalone=True, clusterwide=options.clusterwide,
                            namespaces=options.namespaces, stop_flag=stop)
    finally:
        stop.set()
        await flusher
        if reloader:
            await reloader
        await runner.cleanup()
        await metrics_runner.cleanup()


def run_authenticator(options: AuthenticatorOptions) -> None:
    kopf.configure(verbose=options.verbose, debug=options.debug)
    quiet_body_loggers()
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # headers may hold tokens
    asyncio.run(serve(options))
