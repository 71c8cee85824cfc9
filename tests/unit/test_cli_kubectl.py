"""The command line's kubectl habits without a cluster: names, durations, -o, -A, dry runs,
describe's text, exit codes, the kubectl plugin and its completion."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner
from kubernetes import client

from tokenwarden.cli import cli
from tokenwarden.cli._accounts import ROLE_BINDING_VIEW, SERVICE_ACCOUNT_VIEW
from tokenwarden.cli._describe import age, describe_lines, label
from tokenwarden.cli._dev import dev
from tokenwarden.cli._params import Duration
from tokenwarden.cli._plugin import PROGRAM, cobra_completions, plugin_group
from tokenwarden.cli._rotate import request_value
from tokenwarden.cli._tokens import INGESTION_KEY_VIEW, SERVICE_TOKEN_VIEW
from tokenwarden.cli._views import print_objects
from tokenwarden.tokens import TOKEN_REGEX, mint_token

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No credentials at all: no $KUBECONFIG, no ~/.kube/config, not in a pod."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def invoke(*args: str, group: click.Group = cli, prog: str = "tokenwarden"):
    return CliRunner().invoke(group, list(args), prog_name=prog)


# -- durations -------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800),
                                           ("60", 60), ("2.5", 2.5), (" 10s ", 10)])
def test_durations_as_elsewhere_or_bare_seconds(text, seconds):
    assert Duration().convert(text, None, None) == seconds


@pytest.mark.parametrize("text, words", [("soon", "not a duration"), ("5 minutes", "not a duration"),
                                         ("0s", "too short"), ("-1", "too short"), ("1.5m", "not a duration")])
def test_bad_durations_say_what_to_write(text, words):
    with pytest.raises(click.BadParameter, match=words):
        Duration().convert(text, None, None)


def test_a_duration_may_be_zero_where_zero_means_do_not_wait_and_has_a_floor_where_needed():
    assert Duration(allow_zero=True).convert("0", None, None) == 0
    assert Duration(minimum=10).convert("1m", None, None) == 60
    with pytest.raises(click.BadParameter, match="at least 10s"):
        Duration(minimum=10).convert("5s", None, None)


@pytest.mark.parametrize("args", [
    ["service-token", "create", "ci", "--roles", "reader", "--timeout", "soon"],
    ["ingestion-api-key", "create", "k", "--timeout", "0"],
    ["service-token", "rotate", "ci", "--timeout", "a minute"],
    ["service-token", "import", "ci", "--from-secret", "s", "--roles", "r", "--timeout", "x"],
    ["token", "revoke", "--leaked", "--timeout", "later"],
    ["operator", "-A", "--peering-lifetime", "5s"],
    ["authenticator", "--last-used-interval", "often"],
])
def test_every_time_flag_takes_a_duration(nowhere, args):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--" in result.output and "Traceback" not in result.output


# -- names, checked before credentials ------------------------------------------------

@pytest.mark.parametrize("args", [
    ["service-token", "create", "Bad_Name", "--roles", "reader"],
    ["service-token", "create", "--name", "Bad_Name", "--roles", "reader"],
    ["service-token", "get", "Bad_Name"],
    ["service-token", "describe", "Bad_Name"],
    ["service-token", "rotate", "Bad_Name"],
    ["service-token", "delete", "Bad_Name"],
    ["service-token", "import", "Bad_Name", "--from-secret", "s", "--roles", "reader"],
    ["ingestion-api-key", "create", "Bad_Name"],
    ["ingestion-api-key", "delete", "--id", "Bad_Name"],
    ["ingestion-api-key", "delete", "Bad_Name"],
    ["ingestion-api-key", "get", "Bad_Name"],
    ["service-account", "create", "Bad_Name"],
    ["service-account", "describe", "Bad_Name"],
    ["service-account", "disable", "Bad_Name"],
    ["role-binding", "get", "Bad_Name"],
    ["role-binding", "delete", "Bad_Name"],
    ["service-token", "list", "-n", "Bad_Namespace"],
])
def test_a_bad_name_is_named_even_with_no_kubeconfig(nowhere, args):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert "Bad_Name" in result.output and "lower-case letters" in result.output
    assert "kubeconfig" not in result.output.lower()


def test_good_arguments_with_no_kubeconfig_name_the_fix(nowhere):
    result = invoke("service-token", "get", "ci")
    assert result.exit_code == 1
    assert result.output == ("Error: no kubeconfig: $KUBECONFIG is not set, ~/.kube/config does not exist and this "
                             "is not a pod in a cluster; pass --kubeconfig or set KUBECONFIG\n")


@pytest.mark.parametrize("group", ["service-token", "ingestion-api-key"])
def test_positional_name_and_the_seeds_flag_make_the_same_manifest(nowhere, group):
    extra = ["--roles", "reader"] if group == "service-token" else []
    positional = invoke(group, "create", "ci", *extra, "--dry-run=client", "-o", "json")
    flag = invoke(group, "create", "--name", "ci", *extra, "--dry-run=client", "-o", "json")
    assert positional.exit_code == flag.exit_code == 0, positional.output
    assert positional.output == flag.output
    assert json.loads(positional.output)["metadata"] == {"name": "ci"}
    same = invoke(group, "create", "ci", "--name", "ci", *extra, "--dry-run", "client")
    assert same.exit_code == 0, same.output


@pytest.mark.parametrize("args, words", [
    (["service-token", "create", "a", "--name", "b", "--roles", "reader"], "two names given, 'a' and --name 'b'"),
    (["service-token", "create", "--roles", "reader"], "give the NAME (or --name NAME)"),
    (["ingestion-api-key", "delete"], "give the ID_OR_NAME (or --id ID_OR_NAME)"),
    (["ingestion-api-key", "delete", "1", "--id", "2"], "two names given"),
    (["service-token", "get"], "Missing argument 'ID_OR_NAME'"),
])
def test_a_name_missing_or_given_twice_is_a_usage_error(nowhere, args, words):
    result = invoke(*args)
    assert result.exit_code == 2 and words in result.output, result.output


# -- create --dry-run ---------------------------------------------------------------

@pytest.mark.parametrize("args, kind, spec", [
    (["service-token", "create", "ci", "--roles", "reader,writer", "--ttl", "90d", "--description", "CI"],
     "ServiceToken", {"ttl": "90d", "roles": ["reader", "writer"], "description": "CI"}),
    (["ingestion-api-key", "create", "otel", "--expiration", "2099-01-31"], "IngestionAPIKey",
     {"expiration": "2099-01-31"}),
    (["service-account", "create", "agents", "--workload-identity", "agent"], "ServiceAccount",
     {"workloadIdentities": [{"serviceAccountName": "agent"}]}),
    (["role-binding", "create", "agents-writer", "--service-account", "agents", "--roles", "writer"], "RoleBinding",
     {"serviceAccountName": "agents", "roles": ["writer"]}),
])
def test_dry_run_client_writes_the_manifest_with_no_cluster_and_no_token(nowhere, args, kind, spec):
    result = invoke(*args, "--dry-run=client", "-o", "yaml", "-n", "team-a")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output) == {"apiVersion": "tokenwarden.io/v1alpha1", "kind": kind,
                                             "metadata": {"name": args[2], "namespace": "team-a"}, "spec": spec}
    assert TOKEN_REGEX.search(result.output) is None
    line = invoke(*args, "--dry-run=client")
    assert line.output == f"{kind.lower()}.tokenwarden.io/{args[2]} created (dry run)\n"
    assert invoke(*args, "--dry-run=client", "-o", "name").output == f"{kind.lower()}.tokenwarden.io/{args[2]}\n"


def test_a_dry_run_checks_the_spec_as_a_create_does(nowhere):
    result = invoke("service-token", "create", "ci", "--roles", "reader", "--ttl", "soon", "--dry-run=client")
    assert result.exit_code == 2 and "24h" in result.output
    unknown = invoke("service-token", "create", "ci", "--roles", "reader", "--dry-run=maybe")
    assert unknown.exit_code == 2 and "'maybe' is not one of 'none', 'client', 'server'" in unknown.output


# -- -o and -A -------------------------------------------------------------------------

def _token(name: str, namespace: str, **status) -> dict:
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"roles": ["reader"], "description": "CI"},
            "status": {"phase": "Active", "tokenId": "123456789012345", "secretName": name,
                       "tokenHash": "sha256:" + "ab" * 32, "effectiveRoles": ["reader"],
                       "issuedAt": "2026-01-01T00:00:00Z", "expiresAt": "2099-01-01T00:00:00Z",
                       "conditions": [{"type": "Ready", "status": "True", "reason": "Minted", "message": "minted"}],
                       **status}}


def _lines(capsys) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("|")] for line in capsys.readouterr().out.splitlines()]


def test_all_namespaces_puts_the_namespace_first_and_wide_adds_columns(capsys):
    objects = [_token("ci", "team-a"), _token("ci", "team-b", phase="Failed")]
    print_objects(SERVICE_TOKEN_VIEW, objects, "wide", all_namespaces=True)
    header, *rows = _lines(capsys)
    assert header == ["NAMESPACE", "ID", "NAME", "EXPIRATION", "ROLES", "ACCOUNT", "PHASE", "LAST USED",
                      "SECRET", "ISSUED AT", "ROTATED AT", "MESSAGE"]
    assert [row[0] for row in rows] == ["team-a", "team-b"] and rows[1][6] == "Failed"
    assert rows[0][8:] == ["ci", "2026-01-01T00:00:00Z", "", "minted"]
    print_objects(SERVICE_TOKEN_VIEW, objects, "table")
    assert _lines(capsys)[0] == ["ID", "NAME", "EXPIRATION", "ROLES", "ACCOUNT", "PHASE", "LAST USED"]


@pytest.mark.parametrize("view, kind", [(SERVICE_TOKEN_VIEW, "servicetoken"), (INGESTION_KEY_VIEW, "ingestionapikey"),
                                        (SERVICE_ACCOUNT_VIEW, "serviceaccount"), (ROLE_BINDING_VIEW, "rolebinding")])
def test_every_kind_prints_names_json_yaml_and_never_a_hash(capsys, view, kind):
    objects = [_token("ci", "team-a"), _token("cd", "team-b")]
    print_objects(view, objects, "name")
    assert capsys.readouterr().out == f"{kind}.tokenwarden.io/ci\n{kind}.tokenwarden.io/cd\n"
    print_objects(view, objects, "json")
    as_json = json.loads(capsys.readouterr().out)
    print_objects(view, objects, "yaml")
    assert yaml.safe_load(capsys.readouterr().out) == as_json
    assert [(i["name"], i["namespace"]) for i in as_json] == [("ci", "team-a"), ("cd", "team-b")]
    assert "sha256" not in json.dumps(as_json)
    print_objects(view, objects, "wide", all_namespaces=True)
    header = _lines(capsys)[0]
    assert header[0] == "NAMESPACE" and len(header) > len(view.headers) + 1


# -- describe ------------------------------------------------------------------------

def test_describe_shows_spec_status_conditions_and_events_oldest_first():
    now = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
    obj = {"kind": "ServiceToken", **_token("ci", "team-a")}
    obj["metadata"].update(uid="u1", creationTimestamp="2026-06-01T10:00:00Z",
                           annotations={"tokenwarden.io/rotate": "CHANGE-1", "other.io/x": "y",
                                        "tokenwarden.io/leaked": mint_token("twst")})
    obj["spec"]["rotation"] = {"renewBefore": "7d", "restartTargets": [{"kind": "Deployment", "name": "agent"}]}
    obj["status"]["conditions"][0]["lastTransitionTime"] = "2026-06-01T11:55:00Z"
    events = [client.CoreV1Event(metadata=client.V1ObjectMeta(name="e1"), involved_object=client.V1ObjectReference(),
                                 type="Normal", reason="Minted", message="token minted into Secret ci",
                                 last_timestamp=now - timedelta(hours=2),
                                 source=client.V1EventSource(component="kopf"))]
    text = "\n".join(describe_lines(obj, events, None, now))
    assert "Name:         ci\nNamespace:    team-a\nKind:         ServiceToken" in text
    assert "Annotations:  tokenwarden.io/leaked, tokenwarden.io/rotate=CHANGE-1\n" in text and "other.io" not in text
    assert "  Roles: reader\n" in text and "  Rotation:\n    Renew Before: 7d\n" in text
    assert "    Restart Targets:\n      - Kind: Deployment\n        Name: agent" in text
    assert "  Token Hash: sha256:" in text and "  Token Id: 123456789012345" in text
    assert "Conditions:\n  TYPE  | STATUS | REASON | AGE | MESSAGE\n  Ready | True   | Minted | 5m  | minted" in text
    assert "Events:\n  TYPE   | REASON | AGE | FROM | MESSAGE\n  Normal | Minted | 2h  | kopf | token minted" in text
    assert TOKEN_REGEX.search(text) is None


def test_describe_says_when_there_are_no_events_or_they_cannot_be_read():
    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    obj = {"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "n"}, "spec": {"roles": ["r"]}}
    assert describe_lines(obj, [], None, now)[-2:] == ["Conditions:  <none>", "Events:       <none>"]
    assert describe_lines(obj, [], "<cannot list events: Forbidden>", now)[-1] == \
        "Events:       <cannot list events: Forbidden>"


@pytest.mark.parametrize("key, text", [("serviceAccountName", "Service Account Name"), ("tokenId", "Token Id"),
                                       ("phase", "Phase")])
def test_labels_read_as_kubectl_describe_prints_them(key, text):
    assert label(key) == text


def test_ages_read_as_kubectl_prints_them():
    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    assert [age(now - timedelta(seconds=s), now) for s in (5, 90, 7200, 200000)] == ["5s", "1m", "2h", "2d"]
    assert age(None, now) == "<unknown>" and age("2026-05-31T23:59:00Z", now) == "1m"


# -- rotate -----------------------------------------------------------------------------

def test_rotate_refuses_a_request_the_operator_would_refuse_before_credentials(nowhere):
    result = invoke("service-token", "rotate", "ci", "--request", "x" * 254)
    assert result.exit_code == 2 and "longer than the 253 allowed" in result.output
    empty = invoke("service-token", "rotate", "ci", "--request", " ")
    assert empty.exit_code == 2 and "empty" in empty.output


def test_a_default_request_is_the_time_of_asking():
    assert request_value(datetime(2026, 6, 1, 12, 30, 5, 123456, tzinfo=timezone.utc)) == \
        "2026-06-01T12:30:05.123456Z"


# -- migrate's file ----------------------------------------------------------------------

@pytest.mark.parametrize("content, words", [
    (b"- a\n- b\n", "is a list: it must be a mapping with a list of keys"),
    (b"", "is empty"),
    (b"\x7fELF\x02\x01\x01\x00\xd0\xff", "is not a text file"),
    (b"a: [", "is not valid YAML at line 1, column 5"),
    (b"keys: 5\n", "`keys` must be a list of entries"),
    (b"keys: []\n", "`keys` must not be empty"),
    (b"keys:\n  - name: x\n", "keys[0] (x): `roles` is missing; keys[0] (x): `secret` is missing"),
    (b"keys:\n  - {name: x, roles: reader, secret: s}\n", "keys[0] (x): `roles` must be a list"),
    (b"keys:\n  - {name: x, roles: [r], secret: s, colour: red}\n", "keys[0] (x): `colour` is not a field"),
    (b"keys: [{name: x, roles: [r], secret: s}]\nextra: 1\n", "`extra` is not a field"),
])
def test_a_wrong_keys_file_is_named_in_its_own_words(nowhere, tmp_path, content, words):
    path = tmp_path / "keys.yaml"
    path.write_bytes(content)
    result = invoke("migrate", "--from-file", str(path))
    assert result.exit_code == 1, result.output
    assert words in result.output
    for internal in ("Input should", "Field required", "_File", "Entry", "Traceback", "codec", "Extra inputs"):
        assert internal not in result.output


# -- exit codes ---------------------------------------------------------------------------

@pytest.mark.parametrize("args, code", [
    (["--help"], 0),
    (["service-token", "create", "ci", "--roles", "reader", "--dry-run=client"], 0),
    (["token", "check", "twst_nope"], 1),                          # an answer: not a token
    (["service-token", "list"], 1),                                # an error: no kubeconfig
    (["service-token", "lsit"], 2),                                # usage: no such command
    (["service-token", "list", "--colour"], 2),                    # usage: no such option
    (["service-token", "list", "-o", "table-ish"], 2),             # usage: no such format
    (["service-token", "create", "ci"], 2),                        # usage: roles missing
])
def test_exit_codes_are_0_done_1_error_2_usage(nowhere, args, code):
    assert invoke(*args).exit_code == code


# -- the kubectl plugin -------------------------------------------------------------------

def test_the_plugin_speaks_of_kubectl_tokenwarden():
    plugin = plugin_group(cli)
    root = invoke("--help", group=plugin, prog=PROGRAM)
    assert root.exit_code == 0 and root.output.startswith("Usage: kubectl tokenwarden [OPTIONS] COMMAND")
    create = invoke("service-token", "create", "--help", group=plugin, prog=PROGRAM)
    assert create.output.startswith("Usage: kubectl tokenwarden service-token create [OPTIONS] [NAME]")
    assert "$ kubectl tokenwarden service-token create --name my-service-token" in create.output
    check = invoke("token", "--help", group=plugin, prog=PROGRAM).output
    assert "| base64 -d | kubectl tokenwarden token check -" in check
    usage = invoke("service-token", "create", group=plugin, prog=PROGRAM)
    assert "$ tokenwarden service-token create" in invoke("service-token", "create", "--help").output
    assert usage.exit_code == 2 and "Try 'kubectl tokenwarden service-token create --help' for help." in usage.output


def test_the_plugin_offers_no_command_that_needs_a_checkout():
    plugin = plugin_group(cli)
    assert set(cli.commands) - set(plugin.commands) == {"dev-cluster", "demo"}
    assert "dev-cluster" not in invoke("--help", group=plugin, prog=PROGRAM).output
    assert "dev-cluster" in invoke("--help").output
    assert "demo" not in _candidates(cobra_completions(plugin, ["d"]))[0]
    assert invoke("--version", group=plugin, prog=PROGRAM).output.startswith("kubectl tokenwarden, version ")


def test_build_commands_are_for_developers_only():
    commands = set(cli.commands)
    assert not {c for c in commands if c.startswith("build-")}
    assert set(dev.commands) == {"build-controlplane", "build-node", "build-image"}
    assert "build-" not in invoke("--help").output
    assert "build-image" in invoke("--help", group=dev, prog="tokenwarden-dev").output


def test_entry_points():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["tokenwarden"] == "tokenwarden.cli:main"
    assert scripts["kubectl-tokenwarden"] == "tokenwarden.cli:kubectl_main"
    assert scripts["kubectl_complete-tokenwarden"] == "tokenwarden.cli:kubectl_complete"
    assert scripts["tokenwarden-dev"] == "tokenwarden.cli:dev_main"


def test_every_caller_of_a_build_command_uses_tokenwarden_dev():
    callers = [ROOT / "Makefile", *(ROOT / "docs").rglob("*.md"), *(ROOT / ".github").rglob("*.yml"),
               *(ROOT / "hack").rglob("*.sh"), ROOT / "README.md", *(ROOT / "operator").rglob("*.py")]
    stale = [str(p.relative_to(ROOT)) for p in callers if p.is_file() and "tokenwarden build-" in p.read_text()]
    assert stale == []
    assert "$(BIN)/tokenwarden-dev build-controlplane" in (ROOT / "Makefile").read_text()


# -- completion as kubectl asks for it ------------------------------------------------------

def _candidates(answer: str) -> tuple[list[str], str]:
    *lines, directive = answer.splitlines()
    return [line.split("\t")[0] for line in lines], directive


def test_completion_answers_in_cobras_form():
    commands, directive = _candidates(cobra_completions(cli, ["service-token", ""]))
    assert {"create", "list", "get", "describe", "rotate", "delete"} <= set(commands) and directive == ":4"
    assert _candidates(cobra_completions(cli, ["service-token", "ro"])) == (["rotate"], ":4")
    assert _candidates(cobra_completions(cli, ["service-token", "list", "-o", ""])) == (
        ["table", "wide", "name", "json", "yaml"], ":4")
    assert "--all-namespaces" in _candidates(cobra_completions(cli, ["service-token", "list", "--a"]))[0]
    assert "build-node" not in _candidates(cobra_completions(cli, [""]))[0]
    # A file argument is the shell's to complete.
    assert cobra_completions(cli, ["service-token", "list", "--kubeconfig", ""]) == ":0\n"
    assert cobra_completions(cli, []).endswith(":4\n")


def test_completion_offers_names_from_the_cluster(monkeypatch, tmp_path):
    from tokenwarden.cli import _kubeopts

    class Custom:
        def list_namespaced_custom_object(self, group, version, namespace, plural, **_):
            assert (namespace, plural) == ("team-a", "servicetokens")
            return {"items": [_token("ci", "team-a"), _token("cd", "team-a")]}

    monkeypatch.setattr(_kubeopts.Kube, "custom", property(lambda self: Custom()))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "x"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    words = ["service-token", "rotate", "--kubeconfig", str(kubeconfig), "-n", "team-a", "c"]
    assert _candidates(cobra_completions(cli, words)) == (["ci", "cd"], ":4")


def test_the_installed_completion_program_answers_kubectl():
    program = Path(sys.executable).parent / "kubectl_complete-tokenwarden"
    if not program.exists():
        pytest.skip("tokenwarden is not installed in this environment (pip install -e .)")
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    answer = subprocess.run([str(program), "ingestion-api-key", "de"], capture_output=True, text=True, env=env,
                            timeout=60)
    assert answer.returncode == 0, answer.stderr
    assert _candidates(answer.stdout) == (["delete", "describe"], ":4")
    commands = subprocess.run([str(program), "d"], capture_output=True, text=True, env=env, timeout=60)
    assert _candidates(commands.stdout) == ([], ":4")  # dev-cluster and demo are a checkout's


def test_a_broken_kubeconfig_or_unknown_context_is_named(tmp_path):
    broken = tmp_path / "broken"
    broken.write_text("clusters: [")
    result = invoke("service-token", "list", "--kubeconfig", str(broken))
    assert (result.exit_code, result.output) == (
        1, f"Error: the kubeconfig {broken} is not valid YAML (line 1): fix it, or pass another --kubeconfig\n")
    config = tmp_path / "config"
    config.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "c",
                                      "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                                      "users": [{"name": "u", "user": {"token": "x"}}],
                                      "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    unknown = invoke("service-token", "list", "--kubeconfig", str(config), "--context", "prod")
    assert (unknown.exit_code, unknown.output) == (
        1, "Error: the kubeconfig has no context 'prod': kubectl config get-contexts lists those it has\n")
