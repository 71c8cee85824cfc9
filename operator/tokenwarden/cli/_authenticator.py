from __future__ import annotations

import click

from tokenwarden.cli._serving import prepare


@click.command("authenticator")
@click.option("--kubeconfig", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, in-cluster).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              envvar="TOKENWARDEN_CONFIG", help="Settings file (role catalog, prefixes).")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8443, show_default=True, help="Port to listen on.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Serve HTTPS with this certificate (the TokenReview webhook needs TLS).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Private key of --tls-cert.")
@click.option("-n", "--namespace", "namespaces", multiple=True, help="Watch only these namespaces.")
@click.option("--scheme", "schemes", multiple=True,
              help="Extra Authorization scheme to accept (e.g. an OpenTelemetry collector's). Repeatable.")
@click.option("--last-used-interval", type=float, default=60.0, show_default=True,
              help="Seconds between lastUsedAt writes (at most one per token per interval).")
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.option("--debug", is_flag=True, help="Log everything (tokens are never logged).")
def authenticator(kubeconfig, config_path, host, port, tls_cert, tls_key, namespaces, schemes,
                  last_used_interval, verbose, debug) -> None:
    """Answer "is this token valid, who is it, what may it do".

    \b
    Endpoints:
      /verify                                     forward auth (ingress-nginx auth-url,
                                                  Traefik ForwardAuth, Envoy ext_authz HTTP)
      /apis/authentication.k8s.io/v1/tokenreviews Kubernetes TokenReview webhook
      /healthz /readyz /metrics
    \b
    Examples:
      tokenwarden authenticator --port 8080
      curl -H "Authorization: ApiKey $TOKEN" "http://localhost:8080/verify?permission=write"
    """
    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    from tokenwarden.authn import AuthenticatorOptions, run_authenticator

    settings = prepare(kubeconfig, config_path)
    run_authenticator(AuthenticatorOptions(
        settings=settings, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key,
        namespaces=list(namespaces), clusterwide=not namespaces, last_used_interval=last_used_interval,
        extra_schemes=tuple(schemes), verbose=verbose, debug=debug))
