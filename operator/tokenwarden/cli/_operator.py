from __future__ import annotations

import click

from tokenwarden.cli._serving import prepare


@click.command("operator")
@click.option("--kubeconfig", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, in-cluster).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              default=None, envvar="TOKENWARDEN_CONFIG",
              help="Settings file: role catalog, quotas, prefixes, retention.")
@click.option("-n", "--namespace", "namespaces", multiple=True,
              help="Serve only these namespaces (repeatable; globs allowed).")
@click.option("-A", "--all-namespaces", is_flag=True, help="Serve every namespace.")
@click.option("--peering", default=None, help="Peering object name for several replicas.")
@click.option("--standalone", is_flag=True, help="Run without peering (one replica only).")
@click.option("--priority", type=int, default=0, show_default=True,
              help="Peering priority: the highest-priority replica is active, the others stand by.")
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
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics on this port.")
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.option("--debug", is_flag=True, help="Log everything (tokens are never logged).")
def operator(kubeconfig, config_path, namespaces, all_namespaces, peering, standalone, priority, liveness,
             webhook_port, webhook_host, webhook_bind, webhook_cert_dir, metrics_port,
             verbose, debug) -> None:
    """Run the operator: reconcile accounts, bindings, tokens and keys; mint into Secrets.

    \b
    Examples:
      tokenwarden operator --all-namespaces
      tokenwarden operator -n team-a -n team-b --webhook-port 9443
    """
    if namespaces and all_namespaces:
        raise click.UsageError("use either --namespace or --all-namespaces, not both")
    if not namespaces and not all_namespaces:
        raise click.UsageError("name the namespaces to serve with -n NAMESPACE, or pass --all-namespaces")
    from tokenwarden.handlers import OperatorOptions, run_operator

    settings = prepare(kubeconfig, config_path)
    run_operator(
        OperatorOptions(
            settings=settings,
            namespaces=list(namespaces),
            clusterwide=all_namespaces,
            peering=peering,
            standalone=standalone or not peering,
            priority=priority,
            liveness=liveness,
            webhook_port=webhook_port,
            webhook_host=webhook_host,
            webhook_bind=webhook_bind,
            webhook_cert_dir=webhook_cert_dir,
            metrics_port=metrics_port,
            verbose=verbose,
            debug=debug,
        )
    )
