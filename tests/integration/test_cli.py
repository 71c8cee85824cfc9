"""The installed `tokenwarden` and `kubectl-tokenwarden` executables against the real cluster."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .kubehelpers import GROUP, VERSION, get

BIN = Path(sys.executable).parent


def run(cluster, namespace, *args, program="tokenwarden", env=None, input=None):
    command = [str(BIN / program), *args, "--kubeconfig", str(cluster.kubeconfig), "-n", namespace]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, input=input,
                          env={**os.environ, **(env or {})})


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_service_token_create_list_delete(cluster, operator, custom, namespace):
    created = run(cluster, namespace, "service-token", "create", "--name", "my-service-token",
                  "--roles", "power-user", "--expiration", "2099-12-31")
    assert created.returncode == 0, created.stderr
    prefix = "Service token created: "
    assert created.stdout.startswith(prefix) and created.stdout.count("\n") == 1
    token = created.stdout[len(prefix):].strip()
    assert "✅" not in created.stdout  # stdout is not a terminal
    check = subprocess.run([str(BIN / "tokenwarden"), "token", "check", token], capture_output=True, text=True)
    assert check.returncode == 0 and "valid tokenwarden token (prefix twst)" in check.stdout
    status = get(custom, "ServiceToken", namespace, "my-service-token")["status"]
    assert status["tokenHash"] == _sha(token)

    listed = run(cluster, namespace, "service-token", "list")
    lines = listed.stdout.splitlines()
    assert [c.strip() for c in lines[0].split("|")] == ["ID", "NAME", "EXPIRATION", "ROLES", "ACCOUNT", "PHASE",
                                                        "LAST USED"]
    row = [c.strip() for c in lines[1].split("|")]
    assert row[:4] == [status["tokenId"], "my-service-token", "2099-12-31", "[power-user]"]
    assert row[5] == "Active"
    assert token not in listed.stdout

    as_json = json.loads(run(cluster, namespace, "service-token", "list", "-o", "json").stdout)
    assert as_json[0]["id"] == status["tokenId"] and "sha256" not in json.dumps(as_json)
    assert yaml.safe_load(run(cluster, namespace, "service-token", "list", "-o", "yaml").stdout)[0]["name"] == \
        "my-service-token"

    deleted = run(cluster, namespace, "service-token", "delete", status["tokenId"])
    assert deleted.stdout == f"Service token deleted: {status['tokenId']}\n"


def test_kubectl_plugin_and_ingestion_keys(cluster, operator, custom, namespace):
    created = run(cluster, namespace, "ingestion-api-key", "create", "--name", "my-ingestion-api-key",
                  program="kubectl-tokenwarden")
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("Ingestion API Key generated: twik_")
    listed = run(cluster, namespace, "ingestion-api-key", "list").stdout.splitlines()
    assert [c.strip() for c in listed[0].split("|")] == ["ID", "NAME", "EXPIRATION", "DESCRIPTION"]
    key_id, name, expiration, description = [c.strip() for c in listed[1].split("|")]
    assert (name, expiration, description) == ("my-ingestion-api-key", "", "-")
    deleted = run(cluster, namespace, "ingestion-api-key", "delete", "--id", key_id)
    assert deleted.stdout == f"Ingestion Api Key deleted: {key_id}\n"


def test_accounts_and_bindings(cluster, operator, custom, namespace):
    assert run(cluster, namespace, "service-account", "create", "profiler", "--description", "agents").stdout == \
        "Service account created: profiler\n"
    assert run(cluster, namespace, "role-binding", "create", "profiler-writer", "--service-account", "profiler",
               "--roles", "profile-writer", "--project", "shop").returncode == 0
    created = run(cluster, namespace, "service-token", "create", "--name", "agent", "--service-account", "profiler")
    assert created.returncode == 0, created.stderr
    assert get(custom, "ServiceToken", namespace, "agent")["status"]["effectiveRoles"] == ["profile-writer@shop"]
    bindings = run(cluster, namespace, "role-binding", "list", "-o", "json")
    assert json.loads(bindings.stdout)[0]["project"] == "shop"
    assert run(cluster, namespace, "service-account", "disable", "profiler").returncode == 0
    assert get(custom, "ServiceAccount", namespace, "profiler")["spec"]["disabled"] is True
    assert "profiler" in run(cluster, namespace, "service-account", "list").stdout


@pytest.mark.parametrize("args, words", [
    (["service-token", "create", "--name", "x", "--roles", "reader", "--expiration", "31-12-2099"], "yyyy-MM-dd"),
    (["service-token", "create", "--name", "x", "--roles", "reader", "--expiration", "2001-01-01"], "in the past"),
    (["service-token", "create", "--name", "x", "--roles", "superuser"], "superuser"),
    (["service-token", "create", "--name", "Not_A_Label", "--roles", "reader"], "not a valid name"),
    (["service-token", "delete", "424242424242424"], "no service token with ID or name '424242424242424'"),
    (["ingestion-api-key", "delete", "--id", "nope"], "no ingestion API key"),
])
def test_bad_input_is_one_clear_line_on_stderr(cluster, operator, namespace, args, words):
    result = run(cluster, namespace, *args)
    assert result.returncode != 0
    assert words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_unreachable_server_and_missing_kubeconfig(tmp_path, namespace):
    missing = subprocess.run([str(BIN / "tokenwarden"), "service-token", "list", "--kubeconfig",
                              str(tmp_path / "none")], capture_output=True, text=True)
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "dead",
        "clusters": [{"name": "dead", "cluster": {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "dead", "user": {"token": "x"}}],
        "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "dead"}}]}))
    result = subprocess.run([str(BIN / "tokenwarden"), "service-token", "list", "--kubeconfig", str(dead)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "cannot reach the Kubernetes API server" in result.stderr
    assert "Traceback" not in result.stderr


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
    items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens")["items"]
    assert [i["metadata"]["name"] for i in items if not i["metadata"].get("deletionTimestamp")] == []
