"""Run the authenticator: the public HTTP(S) server, a plain-HTTP one for health and metrics,
and the watches that keep its index current."""
from __future__ import annotations

import asyncio
import functools
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp.web import TCPSite
from kubernetes import client

from tokenwarden.authn._access_log import flush_access_log, open_access_log
from tokenwarden.authn._bindings import BindingStore
from tokenwarden.authn._http import QuietAppRunner
from tokenwarden.authn._index import WORKLOAD, TokenIndex
from tokenwarden.authn._metrics import CREDENTIAL_VERIFICATIONS, INDEX_SYNC
from tokenwarden.authn._import_key import follow_import_key
from tokenwarden.authn._issuer import IssuerKeys
from tokenwarden.authn._reflector import Readiness, Reflector
from tokenwarden.authn._server import Authenticator, LastUsed, flush_last_used
from tokenwarden.servingtls import ReloadingCertificate, watch_certificate
from tokenwarden.authn._tokenreview import KubeReviewer
from tokenwarden.authn._watch import AccountStore, TokenStore
from tokenwarden.authn._workload import WorkloadVerifier
from tokenwarden.buildinfo import export_build_info
from tokenwarden.conditions import rfc3339
from tokenwarden.config import Settings
from tokenwarden.draining import DRAIN_SECONDS, Drain
from tokenwarden.kube import load_api_client, objects, quiet_body_loggers, usage
from tokenwarden.kube._issuer import read_issuer
from tokenwarden.kube._resources import INGESTION_KEYS, ROLE_BINDINGS, SERVICE_ACCOUNTS, SERVICE_TOKENS
from tokenwarden.kube._watching import list_page, open_watch
from tokenwarden.logs import LOG_FORMATS, TEXT_FORMAT, format_logs_as

logger = logging.getLogger("tokenwarden.authenticator")

EVENT_LOOPS = ("asyncio", "uvloop")  # the first is the default


class EventLoopUnavailable(Exception):
    """The event loop asked for cannot run here (uvloop not installed: Windows has none)."""


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
    last_used_interval: float = 60.0
    watch_broken_after: float = 60.0  # seconds a kind's watch may stay broken before /readyz says 503
    credential_metrics_limit: int = 1000  # credentials with per-credential verification series; 0: none
    access_log: str | None = None  # "-": JSON lines on stdout; a path: that file; None: no access log
    access_log_success_rate: float = 1.0  # fraction of successes logged; failures all are
    drain_seconds: float = DRAIN_SECONDS  # tokenwarden.draining
    extra_schemes: tuple[str, ...] = ()
    event_loop: str = EVENT_LOOPS[0]  # "asyncio" (the standard library's own) or "uvloop" (libuv)
    verbose: bool = False
    debug: bool = False
    log_format: str = LOG_FORMATS[0]  # "text" or "json" (tokenwarden.logs)


def _reflectors(index: TokenIndex, namespaces: list[str], forget, stop: threading.Event,
                loop: asyncio.AbstractEventLoop) -> list[Reflector]:
    """One reflector per kind and listing scope, each in a thread with a connection of its
    own; changes reach the index on the event loop."""
    stores = [(SERVICE_ACCOUNTS, AccountStore(index, forget))]
    stores += [(ROLE_BINDINGS, BindingStore(index))]  # roles from the bindings, not from status
    stores += [(resource, TokenStore(resource.kind, index, forget)) for resource in (SERVICE_TOKENS, INGESTION_KEYS)]
    scopes = objects.listing_scopes(namespaces)
    custom = client.CustomObjectsApi(load_api_client(pool_size=len(stores) * len(scopes)))
    reflectors = []
    for scope in scopes:
        for resource, store in stores:
            reflectors.append(Reflector(
                resource.kind if scope is None else f"{resource.kind} in {scope}", _scoped(store, scope),
                functools.partial(list_page, custom, resource, scope),
                functools.partial(open_watch, custom, resource, scope),
                stop=stop, deliver=loop.call_soon_threadsafe))
    return reflectors


def _scoped(store, scope: str | None):
    """A store seen through one namespace: a listing of that namespace replaces only its objects."""
    if scope is None:
        return store
    return _NamespaceView(store, scope)


class _NamespaceView:
    """Keys end in (namespace, name), for tokens, accounts and bindings alike."""

    def __init__(self, store, namespace: str) -> None:
        self.store, self.namespace = store, namespace
        self.record, self.put, self.drop = store.record, store.put, store.drop

    def keys(self):
        return [key for key in self.store.keys() if key[-2] == self.namespace]


def _load_usage(custom: client.CustomObjectsApi, index: TokenIndex, last_used: LastUsed) -> None:
    """What the TokenUsage objects already say, so a restart does not write every use again;
    entries of credentials deleted meanwhile are dropped."""
    from tokenwarden import policies

    def known(key: tuple[str, str, str]) -> bool:  # asked of the index: a set of every token's key would be megabytes
        kind, namespace, name = key
        return (namespace, name) in index.accounts if kind == WORKLOAD else key in index.hashes_of

    # list(): copied at once, in this thread, while the event loop may be changing them
    namespaces = {namespace for _, namespace, _ in list(index.hashes_of)}
    namespaces |= {namespace for namespace, _ in list(index.accounts)}
    for namespace in sorted(namespaces):
        try:
            body = usage.read_usage(custom, namespace)
        except Exception as exc:  # only an optimisation: the next use writes anyway
            logger.warning("could not read the TokenUsage of namespace %s: %s", namespace, exc)
            continue
        for (kind, name), when in usage.usage_entries(body).items():
            key = (kind, namespace, name)
            if not known(key):
                last_used.forget(key)
            elif (parsed := policies.parse_time(when)) is not None:
                last_used.written[key] = parsed


async def serve(options: AuthenticatorOptions, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    index = TokenIndex(catalog=frozenset(options.settings.roles))
    last_used = LastUsed(options.last_used_interval)
    custom = client.CustomObjectsApi(load_api_client())
    watching = threading.Event()  # set when the reflectors' threads should end
    CREDENTIAL_VERIFICATIONS.limit = options.credential_metrics_limit

    def forget(key: tuple[str, str, str]) -> None:  # (kind, namespace, name) of a credential gone
        last_used.forget(key)
        CREDENTIAL_VERIFICATIONS.forget(key[1], key[0], key[2])

    readiness = Readiness(_reflectors(index, options.namespaces, forget, watching,
                                      asyncio.get_running_loop()), options.watch_broken_after)
    INDEX_SYNC.reflectors = readiness.reflectors
    readiness.waiting_for.add("import key")
    workload = options.settings.workload_identity
    workloads = None
    if workload.enabled:
        reviews = load_api_client()
        workloads = WorkloadVerifier(workload, options.settings.audiences, index, KubeReviewer(reviews), time.time,
                                     IssuerKeys(functools.partial(read_issuer, reviews), time.monotonic))
    access_log = open_access_log(options.access_log, options.access_log_success_rate)
    authenticator = Authenticator(options.settings, index, extra_schemes=options.extra_schemes,
                                  last_used=last_used, readiness=readiness, workloads=workloads,
                                  access_log=access_log)

    certificate = ReloadingCertificate(options.tls_cert, options.tls_key) if options.tls_cert else None
    # Health and metrics first, on a port of their own: the public port serves verification only.
    metrics_host = options.metrics_host or options.host
    metrics_runner = QuietAppRunner(authenticator.metrics_app(), access_log=None)
    await metrics_runner.setup()
    await TCPSite(metrics_runner, metrics_host, options.metrics_port).start()
    drain = Drain(options.drain_seconds)
    app = authenticator.app()
    app.middlewares.append(drain.middleware)
    runner = QuietAppRunner(app, access_log=None)
    await runner.setup()
    await TCPSite(runner, options.host, options.port,
                  ssl_context=certificate.context if certificate else None).start()
    logger.info("authenticator listening on %s:%s (%s); health and metrics on http://%s:%s",
                options.host, options.port, "https" if certificate else "http", metrics_host, options.metrics_port)
    reloader = asyncio.create_task(watch_certificate(certificate, stop, options.tls_check_interval)) \
        if certificate else None

    for reflector in readiness.reflectors:
        threading.Thread(target=reflector.run, name=f"reflect-{reflector.kind}", daemon=True).start()
    if workloads is not None:  # at start, so that a missing permission is said at once
        await workloads.keys.refresh()
    await follow_import_key(options.settings.import_key, index, stop)
    readiness.waiting_for.discard("import key")
    while not readiness.loaded() and not stop.is_set():  # until then /verify answers 503
        await asyncio.sleep(0.1)
    logger.info("index loaded: %d token hashes", len(index))

    await asyncio.to_thread(_load_usage, custom, index, last_used)

    def write(namespace: str, uses: dict) -> None:
        status: dict = {}
        for (kind, name), when in uses.items():
            status.setdefault(usage.SECTION_OF[kind], {})[name] = rfc3339(when) if when else None
        usage.write_usage(custom, namespace, status, create=any(uses.values()))

    flusher = asyncio.create_task(flush_last_used(last_used, write, stop))
    log_flusher = asyncio.create_task(flush_access_log(access_log, stop))
    try:
        await stop.wait()
        await drain.stop(runner, "the authenticator")  # answering from the index as it is meanwhile
    finally:
        stop.set()
        watching.set()
        await flusher
        await log_flusher
        if reloader:
            await reloader
        await runner.cleanup()
        await metrics_runner.cleanup()


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What makes the event loop called ``name``; None: asyncio's default loop."""
    if name == "asyncio":
        return None
    if name == "uvloop":
        try:
            import uvloop
        except ImportError as exc:
            raise EventLoopUnavailable("uvloop is not installed here: run with --event-loop asyncio") from exc
        return uvloop.new_event_loop
    raise ValueError(f"unknown event loop {name!r}: one of {', '.join(EVENT_LOOPS)}")


def run_authenticator(options: AuthenticatorOptions) -> None:
    new_loop = loop_factory(options.event_loop)
    logging.basicConfig(level=logging.DEBUG if options.debug or options.verbose else logging.INFO,
                        format=TEXT_FORMAT)
    format_logs_as(options.log_format)
    if not options.debug:
        logging.getLogger("asyncio").setLevel(logging.WARNING)
    quiet_body_loggers()
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # headers may hold tokens
    export_build_info("authenticator")

    async def main() -> None:
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):  # finish in order: last uses are written
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await serve(options, stop)

    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(main())
