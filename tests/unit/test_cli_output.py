from __future__ import annotations

import io
import sys

import pytest
from click.testing import CliRunner

from tokenwarden.cli import cli
from tokenwarden.cli._common import done, print_table


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("tty, no_color, expected", [
    (True, None, "✅ Service token created: x\n"),
    (True, "1", "Service token created: x\n"),
    (False, None, "Service token created: x\n"),
])
def test_emoji_only_on_a_terminal_without_no_color(monkeypatch, tty, no_color, expected):
    out = Terminal() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    if no_color:
        monkeypatch.setenv("NO_COLOR", no_color)
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    done("Service token created: x")
    assert out.getvalue() == expected


def test_table_matches_the_seed_layout(capsys):
    print_table(["ID", "NAME", "EXPIRATION", "DESCRIPTION"], [["250558013078953", "my-ingestion-api-key", "", "-"]])
    assert capsys.readouterr().out.splitlines() == [
        "ID              | NAME                 | EXPIRATION | DESCRIPTION",
        "250558013078953 | my-ingestion-api-key |            | -",
    ]


@pytest.mark.parametrize("group", ["service-token", "ingestion-api-key", "service-account", "role-binding"])
def test_every_group_has_help_with_examples(group):
    result = CliRunner().invoke(cli, [group, "--help"])
    assert result.exit_code == 0 and "Examples:" in result.output


def test_token_check_is_offline():
    from tokenwarden.tokens import mint_token

    runner = CliRunner()
    assert runner.invoke(cli, ["token", "check", mint_token("twik")]).output == "valid tokenwarden token (prefix twik)\n"
    bad = runner.invoke(cli, ["token", "check", "-"], input="twst_nope\n")
    assert bad.exit_code == 1
