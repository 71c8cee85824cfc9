"""What the long-running commands (operator, authenticator) share before they start."""
from __future__ import annotations

import os

import click

from tokenwarden.config import ConfigError, Settings, load_settings
from tokenwarden.logs import LOG_FORMATS

#: ``--log-format`` of the long-running commands.
log_format_option = click.option(
    "--log-format", type=click.Choice(LOG_FORMATS), default=LOG_FORMATS[0], show_default=True,
    help="text, or json: a JSON object per line (time, level, logger, message, object) for log pipelines.")


def prepare(kubeconfig: str | None, config_path: str | None) -> Settings:
    """Point every client at ``kubeconfig`` and read the settings, or exit naming the problem."""
    if kubeconfig:
        os.environ["KUBECONFIG"] = os.path.abspath(kubeconfig)
    try:
        return load_settings(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
