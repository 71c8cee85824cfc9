"""The command line without a cluster: output rules, tables, input checks, token check."""
from __future__ import annotations

import io
import json
import sys
from datetime import date

import click
import pytest
import yaml
from click.testing import CliRunner
from kubernetes.client.rest import ApiException

from tokenwarden.cli import cli
from tokenwarden.cli._check import check_token
from tokenwarden.cli._kubeopts import default_namespace, server_message
from tokenwarden.cli._output import done, fancy, format_data, format_table, print_table, roles_cell
from tokenwarden.cli._tokens import INGESTION_KEY, SERVICE_TOKEN, check_expiration, describe
from tokenwarden.tokens import mint_token


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def stdout(monkeypatch):
    """Replace sys.stdout with a terminal (tty=True) or a pipe; returns the buffer."""

    def use(tty: bool, no_color: str | None = None) -> io.StringIO:
        out = Terminal() if tty else io.StringIO()
        monkeypatch.setattr(sys, "stdout", out)
        if no_color is None:
            monkeypatch.delenv("NO_COLOR", raising=False)
        else:
            monkeypatch.setenv("NO_COLOR", no_color)
        return out

    return use


# -- emoji and colour ----------------------------------------------------------

@pytest.mark.parametrize("tty, no_color, expected", [
    (True, None, "✅ Service token created: x\n"),
    (True, "1", "Service token created: x\n"),
    (True, "", "✅ Service token created: x\n"),  # no-color.org: an empty NO_COLOR does not count
    (False, None, "Service token created: x\n"),
    (False, "1", "Service token created: x\n"),
])
def test_emoji_only_on_a_terminal_without_no_color(stdout, tty, no_color, expected):
    out = stdout(tty, no_color)
    done("Service token created: x")
    assert out.getvalue() == expected
    assert fancy() is expected.startswith("✅")


@pytest.mark.parametrize("tty, no_color, coloured", [(True, None, True), (True, "1", False), (False, None, False)])
def test_phase_colour_follows_the_same_rule_and_keeps_alignment(stdout, tty, no_color, coloured):
    out = stdout(tty, no_color)
    print_table(["NAME", "PHASE", "X"], [["a", "Active", "1"], ["bb", "Failed", "2"]], status_column="PHASE")
    text = out.getvalue()
    assert ("\x1b[" in text) is coloured
    plain = click.unstyle(text).splitlines()
    assert plain == ["NAME | PHASE  | X", "a    | Active | 1", "bb   | Failed | 2"]


# -- tables --------------------------------------------------------------------

def test_ingestion_table_matches_the_seed_layout():
    assert format_table(["ID", "NAME", "EXPIRATION", "DESCRIPTION"],
                        [["250558013078953", "my-ingestion-api-key", "", "-"]]) == [
        "ID              | NAME                 | EXPIRATION | DESCRIPTION",
        "250558013078953 | my-ingestion-api-key |            | -",
    ]


def test_service_token_table_matches_the_seed_layout():
    assert format_table(["ID", "NAME", "EXPIRATION", "ROLES"],
                        [["107484341630693", "my-service-token", None, roles_cell(["stackstate-power-user"])]]) == [
        "ID              | NAME             | EXPIRATION | ROLES",
        "107484341630693 | my-service-token |            | [stackstate-power-user]",
    ]


def test_table_pads_every_column_but_the_last_and_has_no_trailing_spaces():
    lines = format_table(["A", "B", "C"], [["long value", "", ""], ["x", "yy", "a long last cell"]])
    assert lines == ["A          | B  | C", "long value |    |", "x          | yy | a long last cell"]
    assert format_table(["ID", "NAME"], []) == ["ID | NAME"]


@pytest.mark.parametrize("roles, cell", [(["a", "b"], "[a b]"), ([], "[]"), (None, "[]")])
def test_roles_print_as_the_seed_does(roles, cell):
    assert roles_cell(roles) == cell


def test_json_and_yaml_are_plain_lists():
    items = [{"id": "1", "name": "x", "roles": ["a"]}]
    assert json.loads(format_data(items, "json")) == items
    assert yaml.safe_load(format_data(items, "yaml")) == items
    assert json.loads(format_data([], "json")) == [] and yaml.safe_load(format_data([], "yaml")) == []


def _token_object(**status) -> dict:
    return {
        "metadata": {"name": "ci", "namespace": "team-a"},
        "spec": {"roles": ["reader"], "serviceAccountName": "bot", "description": "CI", "expiration": "2099-01-01"},
        "status": {"phase": "Active", "tokenId": "123456789012345", "secretName": "ci",
                   "tokenHash": "sha256:" + "ab" * 32, "effectiveRoles": ["reader"],
                   "expiresAt": "2099-01-02T00:00:00Z", "issuedAt": "2025-01-01T00:00:00Z", **status},
    }


def test_list_data_has_the_documented_fields_and_never_the_hash():
    item = describe(_token_object(), SERVICE_TOKEN)
    assert list(item) == ["id", "name", "namespace", "account", "roles", "phase", "expiresAt", "lastUsedAt",
                          "description"]
    assert item["roles"] == ["reader"] and item["account"] == "bot"
    assert "sha256" not in json.dumps(item)
    key = describe(_token_object(), INGESTION_KEY)
    assert "roles" not in key and "account" not in key


# -- input checks --------------------------------------------------------------

def test_expiration_is_a_date_today_or_later():
    today = date(2030, 6, 15)
    assert check_expiration("2030-06-15", today) == "2030-06-15"  # valid through the whole day
    assert check_expiration(None, today) is None
    for bad, words in [("15-06-2030", "yyyy-MM-dd"), ("2030-02-30", "not a real date"),
                       ("2030-06-14", "in the past"), ("2030-06-15T00:00:00Z", "yyyy-MM-dd")]:
        with pytest.raises(click.BadParameter, match=words):
            check_expiration(bad, today)


@pytest.fixture
def kubeconfig(tmp_path):
    """A kubeconfig for a server nobody listens on: anything that reaches the network fails."""
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "here",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "x"}}],
        "contexts": [{"name": "here", "context": {"cluster": "c", "user": "u", "namespace": "team-a"}},
                     {"name": "bare", "context": {"cluster": "c", "user": "u"}}]}))
    return str(path)


@pytest.mark.parametrize("args, words", [
    (["service-token", "create", "--name", "x", "--roles", "reader", "--expiration", "31-12-2099"], "yyyy-MM-dd"),
    (["service-token", "create", "--name", "x", "--roles", "reader", "--expiration", "2001-01-01"], "in the past"),
    (["service-token", "create", "--name", "x", "--roles", "reader", "--expiration", "2099-12-31",
      "--ttl", "24h"], "not both"),
    (["service-token", "create", "--name", "x", "--roles", " , "], "at least one role"),
    (["service-token", "create", "--name", "x"], "--service-account"),
    (["service-token", "create", "--name", "x", "--roles", "reader", "--ttl", "soon"], "24h"),
    (["service-token", "create", "--name", "x", "--roles", "reader", "--ttl", "99999d"], "limit of 3650d"),
    (["service-token", "create", "--name", "Not_A_Label", "--roles", "reader"], "not a valid name"),
    (["ingestion-api-key", "create", "--name", "k", "--expiration", "2099/01/01"], "yyyy-MM-dd"),
    (["role-binding", "create", "b", "--service-account", "sa", "--roles", ","], "at least one role"),
    (["role-binding", "create", "b", "--service-account", "sa", "--roles", "Bad Role"], "spec.roles"),
    (["service-account", "create", "UPPER"], "not a valid name"),
    (["service-account", "create", "a", "--workload-identity", "Agent"], "invalid name 'Agent'"),
    (["service-account", "create", "a", "--workload-identity", "x", "--workload-identity", "other/y"],
     "'other', not 'team-a'"),
])
def test_bad_input_is_refused_before_the_server_is_called(kubeconfig, args, words):
    result = CliRunner().invoke(cli, [*args, "--kubeconfig", kubeconfig])
    assert result.exit_code == 2, result.output
    assert words in result.output
    assert "cannot reach" not in result.output  # the server was never asked


def test_unreachable_server_is_one_line_naming_the_fix(kubeconfig):
    result = CliRunner().invoke(cli, ["service-token", "list", "--kubeconfig", kubeconfig])
    assert result.exit_code == 1
    assert "cannot reach the Kubernetes API server at https://127.0.0.1:1" in result.output
    assert "--kubeconfig" in result.output and result.exc_info[0] is SystemExit


def test_missing_kubeconfig_names_the_file(tmp_path):
    result = CliRunner().invoke(cli, ["service-token", "list", "--kubeconfig", str(tmp_path / "none")])
    assert result.exit_code == 1 and "does not exist" in result.output


def test_namespace_defaults_to_the_contexts_then_default(kubeconfig, tmp_path):
    assert default_namespace(kubeconfig, None) == "team-a"
    assert default_namespace(kubeconfig, "bare") == "default"
    assert default_namespace(str(tmp_path / "none"), None) == "default"


@pytest.mark.parametrize("status, body, expected", [
    (422, {"message": 'ServiceToken.tokenwarden.io "x" is invalid: spec.ttl: Invalid value'},
     'ServiceToken.tokenwarden.io "x" is invalid: spec.ttl: Invalid value'),
    (400, {"message": 'admission webhook "tokens.tokenwarden.io" denied the request: role superuser is unknown'},
     'admission webhook "tokens.tokenwarden.io" denied the request: role superuser is unknown'),
    (403, {"message": "servicetokens is forbidden: User cannot create"},
     "the API server refused the request (403): servicetokens is forbidden: User cannot create"),
    (404, {"message": "the server could not find the requested resource"}, "CRDs are not installed"),
])
def test_server_refusals_print_the_servers_message(status, body, expected):
    exc = ApiException(status=status, reason="Reason")
    exc.body = json.dumps(body)
    assert expected in server_message(exc)


def test_server_message_without_a_json_body():
    exc = ApiException(status=500, reason="Internal Server Error")
    exc.body = "<html>oops</html>"
    assert server_message(exc) == "Internal Server Error"


# -- help ----------------------------------------------------------------------

def _commands(group: click.Group, path=()):
    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


@pytest.mark.parametrize("path", [p for p, _ in _commands(cli)
                                  if p[0] in ("service-token", "ingestion-api-key", "service-account",
                                              "role-binding", "token")])
def test_every_cli_command_has_help_with_examples(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0 and "Example" in result.output


def test_group_help_documents_shell_completion():
    assert "_TOKENWARDEN_COMPLETE" in CliRunner().invoke(cli, ["--help"]).output


def _complete(words: str) -> str:
    env = {"_TOKENWARDEN_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()))}
    result = CliRunner().invoke(cli, [], prog_name="tokenwarden", env=env)
    assert result.exit_code == 0 and "Traceback" not in result.output
    return result.output


def test_completion_offers_names_and_ids(kubeconfig, monkeypatch):
    from tokenwarden.cli import _kubeopts

    class Custom:
        def list_namespaced_custom_object(self, group, version, namespace, plural, **_):
            assert (namespace, plural) == ("team-a", "servicetokens")
            return {"items": [_token_object()]}

    monkeypatch.setattr(_kubeopts.Kube, "custom", property(lambda self: Custom()))
    output = _complete(f"tokenwarden service-token delete --kubeconfig {kubeconfig} ")
    assert "plain,ci" in output.splitlines() and "plain,123456789012345" in output.splitlines()


def test_completion_offers_nothing_when_the_cluster_is_unreachable(kubeconfig):
    assert _complete(f"tokenwarden service-token delete --kubeconfig {kubeconfig} ").strip() == ""


# -- token check ---------------------------------------------------------------

def test_token_check_accepts_a_minted_token_offline():
    runner = CliRunner()
    result = runner.invoke(cli, ["token", "check", mint_token("twik")])
    assert (result.exit_code, result.output) == (0, "valid tokenwarden token (prefix twik)\n")
    from_stdin = runner.invoke(cli, ["token", "check", "-"], input=mint_token("twst") + "\n")
    assert from_stdin.output == "valid tokenwarden token (prefix twst)\n"


def test_token_check_names_the_reason():
    token = mint_token("twst")
    typo = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert check_token(typo) == (False, "not a tokenwarden token: checksum mismatch: the token was mistyped "
                                        "or truncated")
    valid, message = check_token("twst_nope")
    assert not valid and message.startswith("not a tokenwarden token: expected <prefix>_")
    result = CliRunner().invoke(cli, ["token", "check", "-"], input="twst_nope\n")
    assert result.exit_code == 1 and result.output.startswith("not a tokenwarden token: ")
    assert "twst_nope" not in result.output  # the checked string is never echoed
