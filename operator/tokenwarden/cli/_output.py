"""How the commands print: the seed CLI's ``✅`` lines and tables, json and yaml for scripts.

One rule for decoration: emoji and colour only when stdout is a terminal and
``NO_COLOR`` is unset (https://no-color.org). A pipe or a script reads the same
words without them, so ``grep 'Service token created:'`` works everywhere.
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence

import click
import yaml

#: The ``-o/--output`` option of the commands that print objects (list, get).
OUTPUT = click.option("-o", "--output", type=click.Choice(["table", "wide", "name", "json", "yaml"]),
                      default="table", show_default=True,
                      help="Output format: the table for people (wide: more columns), name for "
                           "kind/name lines, json or yaml for scripts.")

#: The ``-o/--output`` option of the commands that make or change an object (create, rotate).
CHANGE_OUTPUT = click.option("-o", "--output", type=click.Choice(["json", "yaml", "name"]), default=None,
                             help="Print the result as json or yaml for scripts, or as kind/name "
                                  "(default: one line for people).")

_PHASE_COLOURS = {"Active": "green", "Pending": "yellow", "Failed": "red", "Expired": "red", "Revoked": "red",
                  "True": "green", "False": "red", "Unknown": "yellow"}


def fancy() -> bool:
    """True when emoji and colour may be printed: stdout is a terminal and NO_COLOR is unset."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def done(message: str) -> None:
    """Print ``✅ message`` for a person at a terminal, the bare message otherwise."""
    click.echo(decorated(message))


def decorated(message: str) -> str:
    """``✅ message`` for a person at a terminal, the bare message otherwise."""
    return f"✅ {message}" if fancy() else message


def roles_cell(roles: Iterable[str] | None) -> str:
    """Roles as the seed CLI prints them: ``[a b]``."""
    return "[" + " ".join(roles or []) + "]"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]],
                 style: Callable[[int, str, str], str] | None = None) -> list[str]:
    """The seed CLI's table: every column padded to its widest cell, joined with `` | ``.

    ``None`` prints as an empty cell. ``style(column, plain, padded)`` may decorate a
    padded cell (colour); widths are measured on the plain text, so colour never
    breaks the alignment. Trailing spaces are dropped.
    """
    table = [["" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in table]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str], decorate: bool) -> str:
        padded = []
        for i, (cell, width) in enumerate(zip(cells, widths)):
            text = cell.ljust(width) if i < len(widths) - 1 else cell
            padded.append(style(i, cell, text) if decorate and style else text)
        return " | ".join(padded).rstrip()

    return [line(headers, False)] + [line(row, True) for row in table]


def print_table(headers: Sequence[str], rows: Iterable[Sequence[object]], status_column: str | None = None) -> None:
    """Print ``format_table``; on a terminal, colour the cells of ``status_column`` by value."""
    style = None
    if status_column is not None and fancy():
        index = list(headers).index(status_column)

        def style(column: int, plain: str, padded: str) -> str:
            colour = _PHASE_COLOURS.get(plain) if column == index else None
            return click.style(padded, fg=colour) if colour else padded

    for text in format_table(headers, rows, style):
        click.echo(text)


def format_data(items: list[dict] | dict, output: str) -> str:
    """``items`` as a json array or a yaml list (keys in the order given); one object as
    a json or yaml mapping."""
    if output == "json":
        return json.dumps(items, indent=2) + "\n"
    if output == "yaml":
        return yaml.safe_dump(items, sort_keys=False, allow_unicode=True)
    raise ValueError(f"unknown output format {output!r}")


def print_data(items: list[dict] | dict, output: str) -> None:
    click.echo(format_data(items, output), nl=False)
