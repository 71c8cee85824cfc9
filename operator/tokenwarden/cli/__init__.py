"""The ``tokenwarden`` command (also installed as the kubectl plugin ``kubectl-tokenwarden``)."""
from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["authenticator"]:
        # The authenticator's process loads its own command only: every other command's
        # imports (the models, the dev cluster's X.509 code) would add about 11 MB to it.
        from tokenwarden.cli._authenticator import authenticator

        authenticator(args=sys.argv[2:], prog_name="tokenwarden authenticator",
                      help_option_names=["-h", "--help"], max_content_width=100)
        return
    from tokenwarden.cli._app import cli

    cli(prog_name="tokenwarden")


def __getattr__(name: str):
    if name == "cli":  # the whole command group, loaded when asked for
        from tokenwarden.cli._app import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["cli", "main"]
