from __future__ import annotations

import click

from tokenwarden.cli._params import Duration
from tokenwarden.cli._serving import log_format_option, prepare
from tokenwarden.draining import DRAIN_SECONDS


@click.command("authenticator")
@click.option("--kubeconfig", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, in-cluster).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              envvar="TOKENWARDEN_CONFIG", help="Settings file (role catalog, prefixes).")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8443, show_default=True,
              help="Public port: /verify and TokenReview only.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Serve HTTPS with this certificate chain (the TokenReview webhook needs TLS). "
                   "Reloaded when the file changes.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Private key of --tls-cert.")
@click.option("--tls-check-interval", type=Duration(), default="10s",
              show_default=True, help="How often to look at --tls-cert/--tls-key for a new pair, e.g. 10s.")
@click.option("--metrics-host", default=None,
              help="Address of the health and metrics server (default: --host).")
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=9090, show_default=True,
              help="Port of /healthz, /readyz and /metrics (plain HTTP), apart from the public port.")
@click.option("-n", "--namespace", "namespaces", multiple=True, help="Watch only these namespaces.")
@click.option("--scheme", "schemes", multiple=True,
              help="Extra Authorization scheme to accept (e.g. an OpenTelemetry collector's). Repeatable.")
@click.option("--last-used-interval", type=Duration(), default="60s", show_default=True,
              help="Time between lastUsedAt writes, e.g. 60s or 5m (at most one per token per interval).")
@click.option("--watch-broken-after", type=Duration(), default="60s", show_default=True,
              help="How long a watch may stay broken (API server away) before /readyz answers 503, e.g. 60s; "
                   "/verify answers from the last index meanwhile.")
@click.option("--credential-metrics-limit", type=click.IntRange(min=0), default=1000, show_default=True,
              help="At most this many credentials get series of their own in "
                   "tokenwarden_credential_verifications_total (verifications of the others are counted "
                   "together); 0 turns per-credential series off.")
@click.option("--access-log", default=None, metavar="-|PATH",
              help="Write a JSON line per verification (time, result, subject, token id, client, path; never "
                   "the token) to stdout (-) or a file. Off by default.")
@click.option("--access-log-sample-successes", "access_log_success_rate", type=click.FloatRange(0, 1), default=1.0,
              show_default=True, help="Fraction of successful verifications in the access log; every failure is in it.")
@click.option("--drain", "drain_seconds", type=Duration(allow_zero=True), default=f"{DRAIN_SECONDS:g}s",
              show_default=True,
              help="When it stops, the public port goes on answering this long, closing each connection after "
                   "its answer, so that a request sent on a kept-alive connection is answered, not cut, e.g. 2s. "
                   "0: stop at once.")
@click.option("--event-loop", type=click.Choice(["asyncio", "uvloop"]), default="asyncio", show_default=True,
              help="The event loop that serves: asyncio's own, or uvloop (libuv).")
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.option("--debug", is_flag=True, help="Log everything (tokens are never logged).")
@log_format_option
def authenticator(kubeconfig, config_path, host, port, tls_cert, tls_key, tls_check_interval, metrics_host,
                  metrics_port, namespaces, schemes, last_used_interval, watch_broken_after, credential_metrics_limit,
                  access_log, access_log_success_rate, drain_seconds, event_loop, verbose, debug,
                  log_format) -> None:
    """Answer "is this token valid, who is it, what may it do".

    \b
    Endpoints on --port:
      /verify                                     forward auth (ingress-nginx auth-url,
                                                  Traefik ForwardAuth, Envoy ext_authz HTTP)
      /apis/authentication.k8s.io/v1/tokenreviews Kubernetes TokenReview webhook (needs TLS)
    on --metrics-port:
      /healthz /readyz /metrics
    \b
    Examples:
      tokenwarden authenticator --port 8443 --tls-cert tls.crt --tls-key tls.key
      curl --cacert ca.crt -H "Authorization: ApiKey $TOKEN" "https://localhost:8443/verify?permission=write"
      curl http://localhost:9090/readyz
    """
    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if metrics_port == port:
        raise click.UsageError(f"--metrics-port {metrics_port} is the public --port: give the health and "
                               "metrics server a port of its own")
    from tokenwarden.authn import AuthenticatorOptions, run_authenticator
    from tokenwarden.authn._run import EventLoopUnavailable
    from tokenwarden.servingtls import CertificateError

    settings = prepare(kubeconfig, config_path)
    try:
        run_authenticator(AuthenticatorOptions(
            settings=settings, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key,
            tls_check_interval=tls_check_interval, metrics_host=metrics_host, metrics_port=metrics_port,
            namespaces=list(namespaces), last_used_interval=last_used_interval, watch_broken_after=watch_broken_after,
            credential_metrics_limit=credential_metrics_limit,
            access_log=access_log, access_log_success_rate=access_log_success_rate, drain_seconds=drain_seconds,
            extra_schemes=tuple(schemes), event_loop=event_loop, verbose=verbose, debug=debug,
            log_format=log_format))
    except (CertificateError, EventLoopUnavailable) as exc:
        raise click.ClickException(str(exc)) from exc
