"""The ``tokenwarden`` command, also installed as the kubectl plugin ``kubectl-tokenwarden``
(with its completion, ``kubectl_complete-tokenwarden``), and ``tokenwarden-dev``, which builds
the test bed."""
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


def kubectl_main() -> None:
    """``kubectl tokenwarden …``: the same commands, named as kubectl runs them."""
    from tokenwarden.cli._app import cli
    from tokenwarden.cli._plugin import PROGRAM, plugin_group

    plugin_group(cli)(prog_name=PROGRAM)


def kubectl_complete() -> None:
    """``kubectl_complete-tokenwarden WORD…``: what kubectl's completion asks a plugin."""
    from tokenwarden.cli._app import cli
    from tokenwarden.cli._plugin import cobra_completions, plugin_group

    sys.stdout.write(cobra_completions(plugin_group(cli), sys.argv[1:]))


def dev_main() -> None:
    """``tokenwarden-dev``: build the control plane, the node and the image."""
    from tokenwarden.cli._dev import dev

    dev(prog_name="tokenwarden-dev")


def __getattr__(name: str):
    if name == "cli":  # the whole command group, loaded when asked for
        from tokenwarden.cli._app import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["cli", "dev_main", "kubectl_complete", "kubectl_main", "main"]
