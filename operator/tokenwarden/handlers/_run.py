"""Start kopf with tokenwarden's handlers, settings and admission webhook."""
from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import kopf

from tokenwarden.buildinfo import export_build_info
from tokenwarden.config import Settings
from tokenwarden.draining import DRAIN_SECONDS
from tokenwarden.handlers import _events
from tokenwarden.handlers._admission_server import AdmissionServer, admission_server
from tokenwarden.kube import ApiPermanentError, ensure_cluster_peering, events, objects, quiet_body_loggers
from tokenwarden.kube._resources import MANAGED_BY, MANAGED_BY_VALUE
from tokenwarden.logs import LOG_FORMATS, format_logs_as
from tokenwarden.servingtls import ReloadingCertificate


@dataclass
class OperatorOptions:
    settings: Settings = field(default_factory=Settings)
    namespaces: list[str] = field(default_factory=list)
    clusterwide: bool = False
    peering: str | None = None
    standalone: bool = True
    priority: int = 0
    peering_lifetime: int = 60
    liveness: str | None = None
    webhook_port: int | None = None
    webhook_host: str = "127.0.0.1"
    webhook_bind: str = "127.0.0.1"
    webhook_cert_dir: str | None = None
    # True: kopf keeps a ValidatingWebhookConfiguration "tokenwarden.io" current with the
    # webhook's URL and CA (an operator outside the cluster). False: someone else owns the
    # configuration (the chart's, with clientConfig.service) and the operator only serves.
    webhook_managed: bool = True
    webhook_drain_seconds: float = DRAIN_SECONDS  # tokenwarden.draining
    metrics_port: int | None = None
    leak_reports: object | None = None  # handlers._leak_reports.LeakReportOptions; None: no endpoint
    verbose: bool = False
    debug: bool = False
    log_format: str = LOG_FORMATS[0]  # "text" or "json" (tokenwarden.logs)


def _webhook_server(options: OperatorOptions, memo, logger) -> AdmissionServer:
    from tokenwarden.handlers._certificates import webhook_server_from_secret
    from tokenwarden.tls import create_ca, issue_serving_cert

    if options.settings.certificates.webhook.secret_name:
        return webhook_server_from_secret(options, memo, logger)

    directory = Path(options.webhook_cert_dir) if options.webhook_cert_dir else None
    if directory and (directory / "tls.crt").is_file():
        cert, key = directory / "tls.crt", directory / "tls.key"
        ca = directory / "ca.crt" if (directory / "ca.crt").is_file() else cert
    else:
        directory = Path(tempfile.mkdtemp(prefix="tokenwarden-webhook-"))
        authority = create_ca(directory, "tokenwarden-webhook-ca")
        pair = issue_serving_cert(authority, directory, "tls", [options.webhook_host])
        cert, key, ca = pair.cert, pair.key, authority.cert
    return admission_server(options, ReloadingCertificate(str(cert), str(key)).context, ca.read_bytes())


def run_operator(options: OperatorOptions) -> None:
    """Run until SIGINT/SIGTERM. Handlers register on import of tokenwarden.handlers."""
    from tokenwarden import handlers as _  # noqa: F401  (registration)
    from tokenwarden.handlers import _indexes  # noqa: F401  (_indexes first: its event handlers feed the others)
    from tokenwarden.handlers import (  # noqa: F401  (registration)
        _accounts,
        _admission,
        _admission_check,
        _bindings,
        _bootstrap,
        _certificates,
        _mint,  # the token handlers, before expiry and rotation, in the order they always ran
        _revoke,
        _secret_deleted,
        _tampered,
        _import_sources,
        _orphans,
        _unsettled,
        _quota,
        _expiry,
        _import_key,
        _leak_reports,
        _metrics,
        _rotation,
        _settle,
        _schedule,  # the timers of every token: expiry, renewal, collection
        _usage,
        _watches,  # after _settle and _workloads: their startup makes the work queue and the listings
    )
    from tokenwarden.handlers._memo import WORKERS, OperatorMemo

    if options.webhook_port:
        _admission.register()
    _revoke.without_finalizers(kopf.get_default_registry())

    kopf.configure(verbose=options.verbose, debug=options.debug)
    format_logs_as(options.log_format)
    quiet_body_loggers()
    # One access line per admission review is noise (the API server logs its own).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

    @kopf.on.startup()
    def configure(settings: kopf.OperatorSettings, memo, logger, **_) -> None:
        # No handler asks for a finalizer; naming the one older versions put lets kopf remove it.
        settings.persistence.finalizer = _revoke.FINALIZER
        # Bookkeeping in status.kopf: written in the same request as the status itself.
        settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
        settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.kopf.lastHandled")
        settings.posting.loggers = False  # events are the ones we post, not every log line
        # Events posted by kopf (in a handler) and by the operator itself (outside any: handlers/_events.py)
        # name one component, the product.
        settings.posting.reporting_component = events.COMPONENT
        _events.post_outside_handlers_with(memo.core)
        settings.execution.max_workers = WORKERS
        settings.watching.server_timeout = 300
        # kopf watches token Secrets only, selected by the API server: every other Secret of the
        # cluster (a Helm release can be close to 1 MiB) never reaches the process. What must be
        # read beyond them is watched by name or by its own label (handlers/_watches.py).
        settings.watching.label_selectors["", "v1", "secrets"] = f"{MANAGED_BY}={MANAGED_BY_VALUE}"
        # Memory: page kopf's initial listing, and let an object's worker (and its body) go
        # sooner than kopf's 5 s after its last event; a later event starts a new one.
        settings.watching.chunk_size = objects.LIST_PAGE
        settings.queueing.idle_timeout = 0.5
        if options.peering:
            # One ClusterKopfPeering, also when serving some namespaces only: namespaced peering
            # would need a KopfPeering object in every served namespace (and glob), and without
            # it every replica would stay paused.
            settings.peering.clusterwide = True
            settings.peering.lifetime = options.peering_lifetime
            try:
                if not ensure_cluster_peering(memo.core.api_client, options.peering):
                    logger.warning("kopf's ClusterKopfPeering CRD is missing: every replica stays paused "
                                   "until it is installed (the chart installs it for operator.replicas > 1)")
            except ApiPermanentError as exc:
                logger.warning(f"could not create the ClusterKopfPeering {options.peering!r} ({exc}); "
                               "if it does not exist, every replica stays paused")
        quiet_body_loggers()
        if options.webhook_port:
            # Last: it may wait for the webhook's Secret (this handler is then run again).
            settings.admission.server = _webhook_server(options, memo, logger)
            if options.webhook_managed:
                settings.admission.managed = "tokenwarden.io"

    @kopf.on.login()
    def login(**kwargs):
        # Read KUBECONFIG now (the kubernetes client froze its default at import time).
        if os.environ.get("KUBECONFIG") or os.path.exists(os.path.expanduser("~/.kube/config")):
            return kopf.login_with_kubeconfig(**kwargs)
        return kopf.login_with_service_account(**kwargs)

    memo = OperatorMemo.create(options.settings, [] if options.clusterwide else options.namespaces)
    memo.leak_report_options = options.leak_reports
    memo.serves_admission = bool(options.webhook_port)
    if options.metrics_port:
        from prometheus_client import start_http_server

        export_build_info("operator")
        start_http_server(options.metrics_port)
    asyncio.run(kopf.operator(
        clusterwide=options.clusterwide,
        namespaces=options.namespaces,
        standalone=options.standalone,
        peering_name=options.peering,
        priority=options.priority,
        liveness_endpoint=options.liveness,
        memo=memo,
    ))
