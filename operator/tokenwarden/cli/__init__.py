"""The ``tokenwarden`` command (also installed as the kubectl plugin ``kubectl-tokenwarden``)."""
from __future__ import annotations

import click

from tokenwarden.cli._app import cli


def main() -> None:
    cli(prog_name="tokenwarden")


__all__ = ["cli", "main"]
