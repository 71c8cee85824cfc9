"""The command line as users run it, against the real API server and the running operator."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client, watch

from tokenwarden.tokens import TOKEN_REGEX

from .kubehelpers import GROUP, PLURALS, VERSION, create, get, wait_for, wait_for_event

PLUGIN = Path(sys.executable).parent / "kubectl-tokenwarden"
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "KUBECONFIG")}


def tokenwarden(*args: str, input: str | None = None, env: dict | None = None,
                program: list[str] | None = None) -> subprocess.CompletedProcess:
    command = [*(program or [sys.executable, "-m", "tokenwarden"]), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, input=input,
                          env={**CLEAN_ENV, **(env or {})})


def run(cluster, namespace: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return tokenwarden(*args, "--kubeconfig", str(cluster.kubeconfig), "-n", namespace, **kwargs)


def table(stdout: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("|")] for line in stdout.splitlines()]


def sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def wait_gone(custom: client.CustomObjectsApi, kind: str, namespace: str, name: str, timeout: int = 60) -> None:
    """Watch until the object is deleted (finalizers done)."""
    plural = PLURALS[kind]
    listing = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural,
                                                   field_selector=f"metadata.name={name}")
    if not listing["items"]:
        return
    stream = watch.Watch()
    for event in stream.stream(custom.list_namespaced_custom_object, GROUP, VERSION, namespace, plural,
                               field_selector=f"metadata.name={name}",
                               resource_version=listing["metadata"]["resourceVersion"], timeout_seconds=timeout):
        if event["type"] == "DELETED":
            stream.stop()
            return
    raise AssertionError(f"{kind} {namespace}/{name} still exists after {timeout}s")


def names(custom: client.CustomObjectsApi, kind: str, namespace: str) -> list[str]:
    items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind])["items"]
    return [i["metadata"]["name"] for i in items]


# -- service tokens ---------------------------------------------------------------

def test_service_token_create_list_delete(cluster, operator, custom, core, namespace):
    created = run(cluster, namespace, "service-token", "create", "--name", "my-service-token",
                  "--roles", "power-user", "--expiration", "2099-12-31", "--description", "CI")
    assert created.returncode == 0, created.stderr
    # Not a terminal: the seed's line without the emoji, and no progress line.
    prefix = "Service token created: "
    assert created.stdout.startswith(prefix) and created.stdout.count("\n") == 1
    assert created.stderr == ""
    token = created.stdout[len(prefix):].strip()

    check = tokenwarden("token", "check", token)
    assert (check.returncode, check.stdout) == (0, "valid tokenwarden token (prefix twst)\n")
    status = get(custom, "ServiceToken", namespace, "my-service-token")["status"]
    assert status["tokenHash"] == sha256(token)
    secret = core.read_namespaced_secret(status["secretName"], namespace)
    assert base64.b64decode(secret.data["token"]).decode() == token

    listed = run(cluster, namespace, "service-token", "list")
    assert listed.returncode == 0, listed.stderr
    header, row = table(listed.stdout)
    assert header == ["ID", "NAME", "EXPIRATION", "ROLES", "ACCOUNT", "PHASE", "LAST USED"]
    assert row == [status["tokenId"], "my-service-token", "2099-12-31", "[power-user]", "", "Active", ""]
    # The seed's alignment: each column as wide as its widest cell.
    first, second = listed.stdout.splitlines()
    assert first.index("| NAME") == second.index("| my-service-token") == len(status["tokenId"]) + 1
    assert token not in listed.stdout

    as_json = json.loads(run(cluster, namespace, "service-token", "list", "-o", "json").stdout)
    assert as_json == [{"id": status["tokenId"], "name": "my-service-token", "namespace": namespace,
                        "account": None, "roles": ["power-user"], "phase": "Active",
                        "expiresAt": status["expiresAt"], "lastUsedAt": None, "description": "CI"}]
    as_yaml = yaml.safe_load(run(cluster, namespace, "service-token", "list", "-o", "yaml").stdout)
    assert as_yaml == as_json
    assert token not in json.dumps(as_json) and "sha256" not in json.dumps(as_json)

    deleted = run(cluster, namespace, "service-token", "delete", status["tokenId"])
    assert (deleted.returncode, deleted.stdout) == (0, f"Service token deleted: {status['tokenId']}\n")
    wait_gone(custom, "ServiceToken", namespace, "my-service-token")
    assert table(run(cluster, namespace, "service-token", "list").stdout)[1:] == []
    assert core.list_namespaced_secret(namespace, label_selector="tokenwarden.io/token=my-service-token").items == []


def test_delete_by_name_and_ttl_tokens_list_their_end(cluster, operator, custom, namespace):
    assert run(cluster, namespace, "service-token", "create", "--name", "short", "--roles", "reader",
               "--ttl", "24h").returncode == 0
    status = get(custom, "ServiceToken", namespace, "short")["status"]
    _, row = table(run(cluster, namespace, "service-token", "list").stdout)
    assert row[2] == status["expiresAt"]
    deleted = run(cluster, namespace, "service-token", "delete", "short")
    assert deleted.stdout == f"Service token deleted: {status['tokenId']}\n"


def test_emoji_on_a_terminal(cluster, operator, namespace):
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tokenwarden", "service-token", "create", "--name", "tty", "--roles", "reader",
             "--kubeconfig", str(cluster.kubeconfig), "-n", namespace],
            stdout=terminal, stderr=subprocess.PIPE, text=True, timeout=120, env=CLEAN_ENV)
        os.close(terminal)
        terminal = None
        output = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal is closed once everything was read
                break
            if not chunk:
                break
            output += chunk
    finally:
        if terminal is not None:
            os.close(terminal)
        os.close(controller)
    assert result.returncode == 0, result.stderr
    assert output.decode().startswith("✅ Service token created: twst_")


def test_namespace_comes_from_the_kubeconfig_context(cluster, operator, namespace, tmp_path):
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    for context in config["contexts"]:
        context["context"]["namespace"] = namespace
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    created = tokenwarden("service-token", "create", "--name", "here", "--roles", "reader",
                          "--kubeconfig", str(kubeconfig))
    assert created.returncode == 0, created.stderr
    listed = tokenwarden("service-token", "list", "-o", "json", "--kubeconfig", str(kubeconfig))
    assert [(i["name"], i["namespace"]) for i in json.loads(listed.stdout)] == [("here", namespace)]


# -- ingestion API keys, through the kubectl plugin ---------------------------------

def test_ingestion_api_key_round_trip(cluster, operator, custom, namespace):
    plugin = [str(PLUGIN)] if PLUGIN.exists() else None
    created = run(cluster, namespace, "ingestion-api-key", "create", "--name", "my-ingestion-api-key",
                  program=plugin)
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("Ingestion API Key generated: twik_")
    key = created.stdout.split(": ", 1)[1].strip()
    assert tokenwarden("token", "check", "-", input=key).stdout == "valid tokenwarden token (prefix twik)\n"
    status = get(custom, "IngestionAPIKey", namespace, "my-ingestion-api-key")["status"]
    assert status["tokenHash"] == sha256(key)

    listed = run(cluster, namespace, "ingestion-api-key", "list")
    assert table(listed.stdout) == [["ID", "NAME", "EXPIRATION", "DESCRIPTION"],
                                    [status["tokenId"], "my-ingestion-api-key", "", "-"]]
    assert listed.stdout.splitlines()[0].startswith("ID              | NAME                 | EXPIRATION |")
    assert "account" not in json.loads(run(cluster, namespace, "ingestion-api-key", "list", "-o", "json").stdout)[0]

    deleted = run(cluster, namespace, "ingestion-api-key", "delete", "--id", status["tokenId"])
    assert deleted.stdout == f"Ingestion Api Key deleted: {status['tokenId']}\n"
    wait_gone(custom, "IngestionAPIKey", namespace, "my-ingestion-api-key")


# -- accounts and bindings ------------------------------------------------------------

def test_accounts_and_bindings(cluster, operator, custom, namespace):
    assert run(cluster, namespace, "service-account", "create", "profiler", "--description", "agents").stdout == \
        "Service account created: profiler\n"
    bound = run(cluster, namespace, "role-binding", "create", "profiler-writer", "--service-account", "profiler",
                "--roles", "profile-writer", "--project", "shop")
    assert bound.stdout == "Role binding created: profiler-writer\n", bound.stderr
    created = run(cluster, namespace, "service-token", "create", "--name", "agent", "--service-account", "profiler")
    assert created.returncode == 0, created.stderr
    assert get(custom, "ServiceToken", namespace, "agent")["status"]["effectiveRoles"] == ["profile-writer@shop"]
    _, row = table(run(cluster, namespace, "service-token", "list").stdout)
    assert row[1:5] == ["agent", "", "[profile-writer@shop]", "profiler"]

    bindings = json.loads(run(cluster, namespace, "role-binding", "list", "-o", "json").stdout)
    assert [(b["name"], b["serviceAccount"], b["roles"], b["project"]) for b in bindings] == \
        [("profiler-writer", "profiler", ["profile-writer"], "shop")]
    assert table(run(cluster, namespace, "role-binding", "list").stdout)[0] == \
        ["NAME", "SERVICE ACCOUNT", "ROLES", "PROJECT", "READY"]

    assert run(cluster, namespace, "service-account", "disable", "profiler").stdout == \
        "Service account disabled: profiler\n"
    assert get(custom, "ServiceAccount", namespace, "profiler")["spec"]["disabled"] is True
    header, row = table(run(cluster, namespace, "service-account", "list").stdout)
    assert header == ["NAME", "DISABLED", "TOKENS", "WORKLOADS", "READY", "DESCRIPTION"]
    assert row[:2] == ["profiler", "true"] and row[3] == "[]" and row[-1] == "agents"
    assert run(cluster, namespace, "service-account", "enable", "profiler").stdout == \
        "Service account enabled: profiler\n"
    assert get(custom, "ServiceAccount", namespace, "profiler")["spec"]["disabled"] is False

    assert run(cluster, namespace, "role-binding", "delete", "profiler-writer").stdout == \
        "Role binding deleted: profiler-writer\n"
    assert run(cluster, namespace, "service-account", "delete", "profiler").stdout == \
        "Service account deleted: profiler\n"
    missing = run(cluster, namespace, "service-account", "delete", "profiler-2")
    assert missing.returncode == 1
    assert f"no service account 'profiler-2' in namespace '{namespace}'" in missing.stderr


def test_account_with_workload_identities(cluster, operator, custom, core, namespace):
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="profiling-agent")))
    created = run(cluster, namespace, "service-account", "create", "profiler", "--workload-identity",
                  "profiling-agent", "--workload-identity", f"system:serviceaccount:{namespace}:otel-collector")
    assert created.stdout == "Service account created: profiler (workload identities: profiling-agent, " \
                             "otel-collector)\n", created.stderr
    # The one that does not exist yet is named on stderr, with the command that creates it.
    assert created.stderr == (f"Warning: no Kubernetes ServiceAccount 'otel-collector' in namespace '{namespace}' "
                              f"yet: its pods authenticate once it exists (kubectl create serviceaccount "
                              f"otel-collector -n {namespace})\n")
    assert get(custom, "ServiceAccount", namespace, "profiler")["spec"]["workloadIdentities"] == [
        {"serviceAccountName": "profiling-agent"}, {"serviceAccountName": "otel-collector"}]

    def bound(count: int):
        return lambda obj: (obj.get("status") or {}).get("workloadIdentities") == count

    wait_for(custom, "ServiceAccount", namespace, "profiler", bound(1))
    (item,) = json.loads(run(cluster, namespace, "service-account", "list", "-o", "json").stdout)
    assert (item["workloadIdentities"], item["workloadIdentitiesBound"]) == (
        ["profiling-agent", "otel-collector"], 1)
    header, row = table(run(cluster, namespace, "service-account", "list").stdout)
    assert row[header.index("WORKLOADS")] == "[profiling-agent otel-collector] (1 bound)"

    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="otel-collector")))
    wait_for(custom, "ServiceAccount", namespace, "profiler", bound(2))
    assert yaml.safe_load(run(cluster, namespace, "service-account", "list", "-o", "yaml").stdout)[0][
        "workloadIdentitiesBound"] == 2
    _, row = table(run(cluster, namespace, "service-account", "list").stdout)
    assert row[header.index("WORKLOADS")] == "[profiling-agent otel-collector]"


# -- errors -----------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    # Refused by the admission webhook: the server's own message, naming the role.
    (["service-token", "create", "--name", "x", "--roles", "superuser"], "superuser"),
    (["service-token", "create", "--name", "x", "--roles", "reader", "--expiration", "31-12-2099"], "yyyy-MM-dd"),
    (["service-token", "create", "--name", "x", "--roles", "reader", "--expiration", "2001-01-01"], "in the past"),
    (["service-token", "create", "--name", "x", "--roles", "reader", "--expiration", "2099-12-31", "--ttl", "1d"],
     "not both"),
    (["service-token", "create", "--name", "Not_A_Label", "--roles", "reader"], "not a valid name"),
    (["service-token", "delete", "424242424242424"], "no service token with ID or name '424242424242424'"),
    (["ingestion-api-key", "delete", "--id", "nope"], "no ingestion API key with ID or name 'nope'"),
    (["role-binding", "create", "b", "--service-account", "sa", "--roles", "superuser"], "superuser"),
    (["service-account", "create", "a", "--workload-identity", "Agent"], "invalid name 'Agent'"),
    (["service-account", "create", "a", "--workload-identity", "kube-system/agent"], "-n kube-system"),
])
def test_bad_input_is_one_clear_line_on_stderr(cluster, operator, custom, namespace, args, words):
    result = run(cluster, namespace, *args)
    assert result.returncode != 0
    assert words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert names(custom, "ServiceToken", namespace) == []


def test_unknown_id_names_the_namespace(cluster, operator, namespace):
    result = run(cluster, namespace, "service-token", "delete", "x")
    assert (result.returncode, result.stderr) == (
        1, f"Error: no service token with ID or name 'x' in namespace '{namespace}'\n")


def test_failed_token_is_kept_and_named(cluster, operator, custom, core, namespace):
    core.create_namespaced_secret(namespace, client.V1Secret(metadata=client.V1ObjectMeta(name="taken"),
                                                             string_data={"token": "someone else's"}))
    result = run(cluster, namespace, "service-token", "create", "--name", "wants-taken", "--roles", "reader",
                 "--secret-name", "taken")
    assert result.returncode == 1 and result.stdout == ""
    assert "service token wants-taken failed: " in result.stderr
    assert "never overwrites" in result.stderr  # the Ready condition's message
    assert f"left in namespace {namespace}" in result.stderr
    assert get(custom, "ServiceToken", namespace, "wants-taken")["status"]["phase"] == "Failed"


def test_pending_past_the_timeout_says_why_and_leaves_nothing(cluster, operator, custom, namespace):
    create(custom, "ServiceAccount", namespace, "limited", {})
    create(custom, "RoleBinding", namespace, "limited-reader", {"serviceAccountName": "limited", "roles": ["reader"]})
    result = run(cluster, namespace, "service-token", "create", "--name", "greedy", "--service-account", "limited",
                 "--roles", "admin", "--timeout", "5")
    assert result.returncode == 1 and result.stdout == ""
    assert "service token greedy was not minted within 5s" in result.stderr
    assert "admin" in result.stderr  # from the Ready condition
    assert "nothing is left behind" in result.stderr
    wait_gone(custom, "ServiceToken", namespace, "greedy")


def test_operator_not_running_times_out_and_leaves_nothing(cluster, operator, custom, namespace):
    operator.stop()
    try:
        result = run(cluster, namespace, "service-token", "create", "--name", "orphan", "--roles", "reader",
                     "--timeout", "3")
    finally:
        operator.start()
    assert result.returncode != 0
    assert "not minted within 3s" in result.stderr and "operator running" in result.stderr
    assert "nothing is left behind" in result.stderr
    wait_gone(custom, "ServiceToken", namespace, "orphan")


def test_unreachable_server_and_missing_kubeconfig(tmp_path):
    missing = tokenwarden("service-token", "list", "--kubeconfig", str(tmp_path / "none"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "dead",
        "clusters": [{"name": "dead", "cluster": {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "dead", "user": {"token": "x"}}],
        "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "dead"}}]}))
    result = tokenwarden("service-token", "list", "--kubeconfig", str(dead))
    assert result.returncode == 1 and "cannot reach the Kubernetes API server" in result.stderr
    assert "Traceback" not in result.stderr


# -- kubectl's habits: get, describe, rotate, -A, dry runs, -o ------------------------------

def test_get_and_describe_a_token(cluster, operator, custom, core, namespace):
    created = run(cluster, namespace, "service-token", "create", "ci", "--roles", "reader", "-o", "json")
    assert created.returncode == 0, created.stderr
    shown = json.loads(created.stdout)
    token = shown.pop("token")
    status = get(custom, "ServiceToken", namespace, "ci")["status"]
    assert sha256(token) == status["tokenHash"] and shown["secretName"] == status["secretName"]
    assert shown["id"] == status["tokenId"] and shown["phase"] == "Active"

    header, row = table(run(cluster, namespace, "service-token", "get", "ci").stdout)
    assert header[:2] == ["ID", "NAME"] and row[:2] == [status["tokenId"], "ci"]
    by_id = json.loads(run(cluster, namespace, "service-token", "get", status["tokenId"], "-o", "json").stdout)
    assert by_id == {k: v for k, v in shown.items() if k != "secretName"}
    assert run(cluster, namespace, "service-token", "get", "ci", "-o", "name").stdout == \
        "servicetoken.tokenwarden.io/ci\n"
    wide = table(run(cluster, namespace, "service-token", "get", "ci", "-o", "wide").stdout)
    assert wide[0][-4:] == ["SECRET", "ISSUED AT", "ROTATED AT", "MESSAGE"] and wide[1][-4] == "ci"

    wait_for_event(core, namespace, "ci", "Minted")
    described = run(cluster, namespace, "service-token", "describe", "ci")
    assert described.returncode == 0, described.stderr
    text = described.stdout
    assert f"Name:         ci\nNamespace:    {namespace}\nKind:         ServiceToken" in text
    assert "  Phase: Active" in text and f"  Token Id: {status['tokenId']}" in text
    assert "Conditions:" in text and "Ready | True" in text
    assert "Events:" in text and "Minted" in text and f"token {status['tokenId']} minted" in text
    assert token not in text and TOKEN_REGEX.search(text) is None

    missing = run(cluster, namespace, "service-token", "describe", "cd")
    assert (missing.returncode, missing.stderr) == (
        1, f"Error: no service token with ID or name 'cd' in namespace '{namespace}'\n")
    account = run(cluster, namespace, "service-account", "get", "nobody")
    assert account.returncode == 1 and f"no service account 'nobody' in namespace '{namespace}'" in account.stderr


def test_describe_accounts_and_bindings(cluster, operator, custom, namespace):
    assert run(cluster, namespace, "service-account", "create", "agents").returncode == 0
    assert run(cluster, namespace, "role-binding", "create", "agents-writer", "--service-account", "agents",
               "--roles", "writer").returncode == 0
    wait_for(custom, "RoleBinding", namespace, "agents-writer",
             lambda o: any(c.get("type") == "Ready" for c in (o.get("status") or {}).get("conditions") or []))
    text = run(cluster, namespace, "role-binding", "describe", "agents-writer").stdout
    assert "Kind:         RoleBinding" in text and "  Service Account Name: agents" in text
    assert "  Roles: writer" in text and "Ready" in text
    item = json.loads(run(cluster, namespace, "service-account", "get", "agents", "-o", "json").stdout)
    assert (item["name"], item["namespace"]) == ("agents", namespace)


def test_rotate_prints_the_id_and_the_new_hash_only(cluster, operator, custom, core, namespace):
    created = run(cluster, namespace, "service-token", "create", "ci", "--roles", "reader")
    assert created.returncode == 0, created.stderr
    old_token = created.stdout.split(": ", 1)[1].strip()
    before = get(custom, "ServiceToken", namespace, "ci")["status"]

    rotated = run(cluster, namespace, "service-token", "rotate", "ci")
    assert rotated.returncode == 0, rotated.stderr
    after = get(custom, "ServiceToken", namespace, "ci")
    status = after["status"]
    assert status["tokenHash"] != before["tokenHash"]
    assert rotated.stdout == f"Service token rotated: {status['tokenId']} {status['tokenHash']}\n"
    request = after["metadata"]["annotations"]["tokenwarden.io/rotate"]
    assert status["rotationRequest"] == request
    secret = core.read_namespaced_secret(status["secretName"], namespace)
    new_token = base64.b64decode(secret.data["token"]).decode()
    assert sha256(new_token) == status["tokenHash"] and new_token != old_token
    for output in (rotated.stdout, rotated.stderr):
        assert TOKEN_REGEX.search(output) is None

    again = run(cluster, namespace, "service-token", "rotate", status["tokenId"], "--request", "CHANGE-1234",
                "-o", "json")
    assert again.returncode == 0, again.stderr
    status = get(custom, "ServiceToken", namespace, "ci")["status"]
    assert json.loads(again.stdout) == {"id": status["tokenId"], "tokenHash": status["tokenHash"]}
    assert status["rotationRequest"] == "CHANGE-1234"
    answered = run(cluster, namespace, "service-token", "rotate", "ci", "--request", "CHANGE-1234")
    assert answered.returncode == 2 and "was answered already" in answered.stderr


def test_rotate_an_ingestion_key(cluster, operator, custom, namespace):
    assert run(cluster, namespace, "ingestion-api-key", "create", "otel").returncode == 0
    before = get(custom, "IngestionAPIKey", namespace, "otel")["status"]["tokenHash"]
    rotated = run(cluster, namespace, "ingestion-api-key", "rotate", "otel", "-o", "yaml")
    assert rotated.returncode == 0, rotated.stderr
    status = get(custom, "IngestionAPIKey", namespace, "otel")["status"]
    assert yaml.safe_load(rotated.stdout) == {"id": status["tokenId"], "tokenHash": status["tokenHash"]}
    assert status["tokenHash"] != before


def test_rotate_says_why_when_the_operator_would_not(cluster, operator, custom, core, namespace):
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="legacy", labels={"tokenwarden.io/importable": "true"}),
        string_data={"token": "legacy-key-0123456789abcdef"}))
    create(custom, "ServiceToken", namespace, "legacy", {"roles": ["reader"],
                                                         "import": {"secretRef": {"name": "legacy"}}})
    wait_for(custom, "ServiceToken", namespace, "legacy",
             lambda o: (o.get("status") or {}).get("phase") == "Active")
    imported = run(cluster, namespace, "service-token", "rotate", "legacy")
    assert imported.returncode == 1 and "its owner rotates" in imported.stderr and imported.stdout == ""
    assert "tokenwarden.io/rotate" not in (get(custom, "ServiceToken", namespace, "legacy")["metadata"]
                                           .get("annotations") or {})
    missing = run(cluster, namespace, "ingestion-api-key", "rotate", "nope")
    assert missing.returncode == 1 and "no ingestion API key with ID or name 'nope'" in missing.stderr


def test_rotate_without_the_operator_leaves_the_request_for_it(cluster, operator, custom, namespace):
    assert run(cluster, namespace, "service-token", "create", "ci", "--roles", "reader").returncode == 0
    before = get(custom, "ServiceToken", namespace, "ci")["status"]["tokenHash"]
    operator.stop()
    try:
        result = run(cluster, namespace, "service-token", "rotate", "ci", "--request", "CHANGE-7", "--timeout", "3s")
    finally:
        operator.start()
    assert result.returncode == 1 and result.stdout == ""
    assert "service token ci was not rotated within 3s (is the tokenwarden operator running?)" in result.stderr
    assert "tokenwarden.io/rotate=CHANGE-7" in result.stderr
    # The request stays; the operator answers it once it runs.
    rotated = wait_for(custom, "ServiceToken", namespace, "ci",
                       lambda o: (o.get("status") or {}).get("rotationRequest") == "CHANGE-7")
    assert rotated["status"]["tokenHash"] != before


def test_list_all_namespaces(cluster, operator, custom, core, namespace):
    other = f"{namespace[:50]}-other"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    try:
        for where in (namespace, other):
            assert run(cluster, where, "ingestion-api-key", "create", "otel").returncode == 0
        listed = run(cluster, namespace, "ingestion-api-key", "list", "-A")
        assert listed.returncode == 0, listed.stderr
        header, *rows = table(listed.stdout)
        assert header == ["NAMESPACE", "ID", "NAME", "EXPIRATION", "DESCRIPTION"]
        assert [(r[0], r[2]) for r in rows if r[0] in (namespace, other)] == [(namespace, "otel"), (other, "otel")]
        items = json.loads(run(cluster, namespace, "ingestion-api-key", "list", "--all-namespaces",
                               "-o", "json").stdout)
        assert {(i["namespace"], i["name"]) for i in items} >= {(namespace, "otel"), (other, "otel")}
        names = run(cluster, namespace, "ingestion-api-key", "list", "-A", "-o", "name").stdout.splitlines()
        assert names.count("ingestionapikey.tokenwarden.io/otel") >= 2
    finally:
        core.delete_namespace(other)


def test_dry_run_creates_nothing_and_shows_no_token(cluster, operator, custom, namespace):
    manifest = run(cluster, namespace, "service-token", "create", "ci", "--roles", "reader", "--ttl", "90d",
                   "--dry-run=client", "-o", "yaml")
    assert manifest.returncode == 0, manifest.stderr
    assert TOKEN_REGEX.search(manifest.stdout) is None and TOKEN_REGEX.search(manifest.stderr) is None
    document = yaml.safe_load(manifest.stdout)
    assert document["metadata"] == {"name": "ci", "namespace": namespace}
    server = run(cluster, namespace, "service-token", "create", "ci", "--roles", "reader", "--dry-run=server",
                 "-o", "json")
    assert server.returncode == 0, server.stderr
    assert json.loads(server.stdout)["spec"]["roles"] == ["reader"] and TOKEN_REGEX.search(server.stdout) is None
    refused = run(cluster, namespace, "service-token", "create", "ci", "--roles", "superuser", "--dry-run=server")
    assert refused.returncode == 1 and "superuser" in refused.stderr
    assert names(custom, "ServiceToken", namespace) == []

    # The manifest is what kubectl apply would send: the operator mints it.
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", document)
    minted = wait_for(custom, "ServiceToken", namespace, "ci",
                      lambda o: (o.get("status") or {}).get("phase") in ("Active", "Failed"))
    assert minted["status"]["phase"] == "Active" and minted["spec"]["ttl"] == "90d"


def test_completion_offers_the_clusters_names(cluster, operator, custom, namespace):
    create(custom, "ServiceAccount", namespace, "agents", {})
    create(custom, "ServiceAccount", namespace, "analysts", {})
    program = Path(sys.executable).parent / "kubectl_complete-tokenwarden"
    answer = tokenwarden("service-account", "describe", "--kubeconfig", str(cluster.kubeconfig), "-n", namespace,
                         "a", program=[str(program)])
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout == "agents\nanalysts\n:4\n"


def _kubectl() -> str | None:
    """A kubectl that completes plugins (1.26 and later): on PATH, or the one the node build cached."""
    from tokenwarden.devcluster._build import cache_root

    found = shutil.which("kubectl")
    if found:
        return found
    built = sorted(p for p in (cache_root() / "node").glob("*/kubectl") if not p.parent.name.endswith(".partial"))
    return str(built[-1]) if built else None


def test_kubectl_completes_the_plugin(cluster, operator, custom, namespace, tmp_path):
    kubectl = _kubectl()
    if kubectl is None:
        pytest.skip("no kubectl here (make node builds one)")
    create(custom, "IngestionAPIKey", namespace, "otel", {})
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    answer = subprocess.run([kubectl, "__complete", "tokenwarden", "ingestion-api-key", "describe", "--kubeconfig",
                             str(cluster.kubeconfig), "-n", namespace, ""],
                            capture_output=True, text=True, timeout=60, env={**CLEAN_ENV, "PATH": path})
    assert answer.returncode == 0, answer.stderr
    *candidates, directive = answer.stdout.splitlines()
    assert "otel" in candidates and directive == ":4"  # the name, and the key's ID once minted
    commands = subprocess.run([kubectl, "__complete", "tokenwarden", "service-token", "ro"], capture_output=True,
                              text=True, timeout=60, env={**CLEAN_ENV, "PATH": path})
    assert [line.split("\t")[0] for line in commands.stdout.splitlines()] == ["rotate", ":4"]
