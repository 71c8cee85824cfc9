"""tokenwarden as a kubectl plugin: ``kubectl tokenwarden …`` and its shell completion.

kubectl (1.26 and later) completes a plugin's arguments by running the executable
``kubectl_complete-<plugin>`` with the words typed after the plugin's name, the last one
the word being completed, and reads the answer in Cobra's ``__complete`` form: one
candidate a line (``value<TAB>description``), then ``:<directive>``.
"""
from __future__ import annotations

import re

import click
from click.shell_completion import ShellComplete

PROGRAM = "kubectl tokenwarden"

# Cobra's ShellCompDirective values.
_DEFAULT = 0       # let the shell complete file names
_NO_FILES = 4      # only the candidates given
_DIRECTORIES = 16  # directory names

_EXAMPLE = re.compile(r"(?m)(^\s*(?:\$ )?|\| )tokenwarden (?=[a-z])")


def cobra_completions(command: click.Command, words: list[str]) -> str:
    """The candidates for the last of ``words`` (the one being typed), in Cobra's form."""
    *args, incomplete = words or [""]
    completer = ShellComplete(command, {}, PROGRAM, "_KUBECTL_TOKENWARDEN_COMPLETE")
    items = completer.get_completions(args, incomplete)
    types = {item.type for item in items}
    if "file" in types:
        return f":{_DEFAULT}\n"
    if "dir" in types:
        return f":{_DIRECTORIES}\n"
    lines = [f"{item.value}\t{item.help.splitlines()[0]}" if item.help else item.value for item in items]
    return "".join(f"{line}\n" for line in lines) + f":{_NO_FILES}\n"


class _Formatter(click.HelpFormatter):
    """Help whose examples name the program as it was run (``kubectl tokenwarden …`` for the plugin)."""

    program = "tokenwarden"

    def write_text(self, text: str) -> None:
        if self.program != "tokenwarden":
            text = _EXAMPLE.sub(lambda m: f"{m.group(1)}{self.program} ", text)
        super().write_text(text)


class _Context(click.Context):
    formatter_class = _Formatter

    def make_formatter(self) -> click.HelpFormatter:
        formatter = super().make_formatter()
        formatter.program = self.find_root().info_name or "tokenwarden"
        return formatter


def examples_as_run(group: click.Group) -> click.Group:
    """Make every command of ``group`` write its examples with the program's name as run."""

    def visit(command: click.Command) -> None:
        command.context_class = _Context
        for sub in getattr(command, "commands", {}).values():
            visit(sub)

    visit(group)
    return group


#: Commands that need a tokenwarden checkout (they build from its hack/ folder): not the
#: kubectl user's.
CHECKOUT_ONLY = ("dev-cluster", "demo")


def plugin_group(group: click.Group) -> click.Group:
    """``group`` as ``kubectl tokenwarden``: the same commands but those of a checkout."""
    plugin = click.Group(group.name, commands={name: command for name, command in group.commands.items()
                                               if name not in CHECKOUT_ONLY},
                         callback=group.callback, params=group.params, help=group.help,
                         context_settings=group.context_settings)
    plugin.context_class = _Context
    return plugin
