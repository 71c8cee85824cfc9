from __future__ import annotations

import math
import time

import click

from tokenwarden.cli._params import Duration
from tokenwarden.cli._serving import log_format_option, prepare
from tokenwarden.draining import DRAIN_SECONDS


class _Priority(click.ParamType):
    """An integer, or ``auto``: the earlier a process started, the higher its priority."""

    name = "INTEGER|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        if str(value).strip().lower() == "auto":
            return auto_priority()
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is neither an integer nor 'auto'", param, ctx)


def auto_priority() -> int:
    """Minus this process's start time in microseconds: distinct for every replica (kopf pauses
    all replicas of equal priority), and the oldest wins, so a replica started by a rollout
    stands by instead of taking over, and the active one changes only when it goes."""
    return -(time.time_ns() // 1000)


@click.command("operator")
@click.option("--kubeconfig", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, in-cluster).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              default=None, envvar="TOKENWARDEN_CONFIG",
              help="Settings file: role catalog, quotas, prefixes, retention.")
@click.option("-n", "--namespace", "namespaces", multiple=True,
              help="Serve only these namespaces (repeatable; globs allowed).")
@click.option("-A", "--all-namespaces", is_flag=True, help="Serve every namespace.")
@click.option("--peering", default=None,
              help="Name of the ClusterKopfPeering that several replicas share (cluster-wide also "
                   "when serving some namespaces): one replica is active, the others stand by.")
@click.option("--standalone", is_flag=True, help="Run without peering (one replica only).")
@click.option("--priority", type=_Priority(), default="0", show_default=True,
              help="Peering priority: the highest-priority replica is active, the others stand by "
                   "(equal priorities pause them all). 'auto': the replica started first is active "
                   "and another takes over only when it goes.")
@click.option("--peering-lifetime", type=Duration(minimum=10), default="60s", show_default=True,
              help="How long a replica's peering record stays valid (e.g. 60s, 2m; at least 10s): a standby "
                   "takes over this long "
                   "after a replica's last keep-alive when it dies without leaving (at once when it stops).")
@click.option("--liveness", "liveness", default=None,
              help="Liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
@click.option("--webhook-port", type=int, default=None,
              help="Serve the validating admission webhook on this port.")
@click.option("--webhook-host", default="127.0.0.1", show_default=True,
              help="Host name or IP the API server uses to reach the webhook.")
@click.option("--webhook-bind", default="127.0.0.1", show_default=True,
              help="Address the webhook server listens on.")
@click.option("--webhook-cert-dir", type=click.Path(file_okay=False), default=None,
              help="Folder with tls.crt, tls.key and ca.crt; a self-signed set is made when absent.")
@click.option("--webhook-managed/--no-webhook-managed", default=True, show_default=True,
              help="Keep the ValidatingWebhookConfiguration 'tokenwarden.io' current with the webhook's "
                   "URL (--webhook-host) and CA; --no-webhook-managed when it is installed otherwise "
                   "(the Helm chart's, which reaches the webhook through its Service).")
@click.option("--webhook-drain", "webhook_drain_seconds", type=Duration(allow_zero=True), default=f"{DRAIN_SECONDS:g}s",
              show_default=True,
              help="When the operator stops, the webhook goes on answering this long, closing each connection "
                   "after its answer, so that a request the API server sends on a kept-alive connection is "
                   "answered, not cut (a refused write), e.g. 2s. 0: stop at once.")
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics on this port.")
@click.option("--leak-report-port", type=click.IntRange(1, 65535), default=None,
              help="Accept leak reports from a secret scanner (GitHub's partner programme format) on this "
                   "port (plain HTTP; put TLS in front). Off by default.")
@click.option("--leak-report-bind", default="0.0.0.0", show_default=True, help="Address the leak-report server listens on.")
@click.option("--leak-report-path", default="/secret-scanning", show_default=True, help="Path leak reports are POSTed to.")
@click.option("--leak-report-keys", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The scanner's public keys, as GitHub serves them (api.github.com/meta/public_keys/"
                   "secret_scanning): only reports signed with one of them are acted on.")
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.option("--debug", is_flag=True, help="Log everything (tokens are never logged).")
@log_format_option
def operator(kubeconfig, config_path, namespaces, all_namespaces, peering, standalone, priority, peering_lifetime,
             liveness, webhook_port, webhook_host, webhook_bind, webhook_cert_dir, webhook_managed,
             webhook_drain_seconds, metrics_port, leak_report_port, leak_report_bind, leak_report_path,
             leak_report_keys, verbose, debug, log_format) -> None:
    """Run the operator: reconcile accounts, bindings, tokens and keys; mint into Secrets.

    \b
    Examples:
      tokenwarden operator --all-namespaces
      tokenwarden operator -n team-a -n team-b --webhook-port 9443
      tokenwarden operator -A --peering tokenwarden --priority auto   # one of several replicas
    """
    if namespaces and all_namespaces:
        raise click.UsageError("use either --namespace or --all-namespaces, not both")
    if not namespaces and not all_namespaces:
        raise click.UsageError("name the namespaces to serve with -n NAMESPACE, or pass --all-namespaces")
    from tokenwarden.handlers import OperatorOptions, run_operator

    leak_reports = _leak_reports(leak_report_port, leak_report_bind, leak_report_path, leak_report_keys)
    settings = prepare(kubeconfig, config_path)
    run_operator(
        OperatorOptions(
            settings=settings,
            namespaces=list(namespaces),
            clusterwide=all_namespaces,
            peering=peering,
            standalone=standalone or not peering,
            priority=priority,
            peering_lifetime=math.ceil(peering_lifetime),
            liveness=liveness,
            webhook_port=webhook_port,
            webhook_host=webhook_host,
            webhook_bind=webhook_bind,
            webhook_cert_dir=webhook_cert_dir,
            webhook_managed=webhook_managed,
            webhook_drain_seconds=webhook_drain_seconds,
            metrics_port=metrics_port,
            leak_reports=leak_reports,
            verbose=verbose,
            debug=debug,
            log_format=log_format,
        )
    )


def _leak_reports(port, bind, path, keys_file):
    """The leak-report endpoint's options; None when it is off. Keys that do not load stop here."""
    if port is None:
        if keys_file:
            raise click.UsageError("--leak-report-keys goes with --leak-report-port")
        return None
    if not keys_file:
        raise click.UsageError("--leak-report-port needs --leak-report-keys: the public keys reports are "
                               "signed with (GitHub's: curl https://api.github.com/meta/public_keys/secret_scanning)")
    if not path.startswith("/"):
        raise click.BadParameter(f"{path!r} is no path: start it with /", param_hint="--leak-report-path")
    from tokenwarden.handlers._leak_reports import LeakReportOptions
    from tokenwarden.policies._leak_reports import load_keys

    try:
        keys = load_keys(open(keys_file).read())
    except ValueError as exc:
        raise click.BadParameter(f"{keys_file}: {exc}", param_hint="--leak-report-keys") from None
    return LeakReportOptions(port=port, bind=bind, path=path, keys=keys)
