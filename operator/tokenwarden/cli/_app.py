from __future__ import annotations

import click

from tokenwarden.cli import _authenticator, _demo, _devcluster, _operator


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="tokenwarden")
def cli() -> None:
    """tokenwarden: service accounts, role bindings, service tokens and ingestion API keys
    as Kubernetes custom resources.

    \b
    Examples:
      tokenwarden dev-cluster --kubeconfig /tmp/tw.kubeconfig
      tokenwarden operator --all-namespaces
      tokenwarden service-token create --name ci --roles power-user --expiration 2027-01-31
    """


cli.add_command(_devcluster.dev_cluster)
cli.add_command(_devcluster.build_controlplane)
cli.add_command(_operator.operator)
cli.add_command(_demo.demo)
cli.add_command(_authenticator.authenticator)
