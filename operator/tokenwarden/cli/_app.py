from __future__ import annotations

import click

from tokenwarden.cli import _accounts, _authenticator, _check, _demo, _devcluster, _migrate, _operator, _tokens
from tokenwarden.cli._leaks import revoke
from tokenwarden.cli._plugin import examples_as_run
from tokenwarden.cli._rotate import rotate_command

SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=SETTINGS)
@click.version_option(package_name="tokenwarden")
def cli() -> None:
    """tokenwarden: service accounts, role bindings, service tokens and ingestion API keys
    as Kubernetes custom resources.

    Shell completion: eval "$(_TOKENWARDEN_COMPLETE=bash_source tokenwarden)" (zsh_source, fish_source);
    as a kubectl plugin, kubectl_complete-tokenwarden is installed beside it.
    Exit status: 0 done, 1 an error (the API server's, or the cluster's state), 2 a usage error.

    \b
    Examples:
      tokenwarden service-token list -A
      tokenwarden operator --all-namespaces
      tokenwarden service-token create --name ci --roles power-user --expiration 2027-01-31
    """


cli.add_command(_devcluster.dev_cluster)
cli.add_command(_operator.operator)
cli.add_command(_demo.demo)
cli.add_command(_authenticator.authenticator)
cli.add_command(_tokens.service_token)
cli.add_command(_tokens.ingestion_api_key)
cli.add_command(_accounts.service_account)
cli.add_command(_accounts.role_binding)
cli.add_command(_check.token)
cli.add_command(_migrate.migrate)
_tokens.service_token.add_command(_migrate.import_token)
_tokens.service_token.add_command(rotate_command(_tokens.SERVICE_TOKEN))
_tokens.ingestion_api_key.add_command(rotate_command(_tokens.INGESTION_KEY))
_tokens.service_token.add_command(revoke)
_tokens.ingestion_api_key.add_command(revoke)
_check.token.add_command(revoke)
examples_as_run(cli)
