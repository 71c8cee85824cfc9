"""Workload identity on a real node: examples/agent-workload-identity.yaml, applied as written,
authenticates with the projected service-account token the kubelet mounts, through the
authenticator's Service, with no Secret in its namespace. Also starts the short-lived agent
whose renewal test_35 checks near the end of the tier."""
from __future__ import annotations

import time
from datetime import datetime

import pytest

from .conftest import (
    CA_FILE,
    WORKLOAD_AGENT,
    copy_authenticator_ca,
    probe_lines,
    running_pods,
    verify_url,
    workload_example,
)

NAMESPACE = "profiling"  # the example's
ACCOUNT = "profiler"
SELECTOR = f"app.kubernetes.io/name={WORKLOAD_AGENT}"
SUBJECT = f"tokenwarden:{NAMESPACE}:serviceaccount:{ACCOUNT}"


def _account(node) -> dict:
    return node.json("get", "serviceaccounts.tokenwarden.io", "-n", NAMESPACE, ACCOUNT)


def _allowed(node, pod: str, after: int = 0) -> list[dict]:
    return [line for line in probe_lines(node.logs(NAMESPACE, pod))[after:] if line.get("status") == "200"]


def _probe_token(node, pod: str, token: str):
    """``token`` sent once from inside the agent's pod (on stdin, never argv)."""
    return node.kubectl("exec", "-i", "-n", NAMESPACE, pod, "--", "tokenwarden", "token", "probe", "--once",
                        "--token-file", "/dev/stdin", "--url", verify_url("write:profiles"), "--ca-file", CA_FILE,
                        input=token, check=False)


@pytest.fixture(scope="module")
def workload_agent(node, release, renewing_agent) -> str:
    """The example applied as its comment says; returns its pod once it got a 200. Asking for
    ``renewing_agent`` starts the short-lived agent now, early in the tier."""
    applied = time.monotonic()
    node.kubectl("create", "namespace", NAMESPACE)
    copy_authenticator_ca(node, NAMESPACE)
    node.kubectl("apply", "-f", "-", input=workload_example())
    pod = node.wait_until("a workload agent running", lambda: next(iter(running_pods(node, NAMESPACE, SELECTOR)),
                                                                   None))["metadata"]["name"]
    node.wait_until("the workload agent's first 200", lambda: _allowed(node, pod))
    node.record("workload-identity example applied to its first 200", time.monotonic() - applied)
    return pod


def test_the_example_agent_authenticates_with_its_projected_token(node, workload_agent):
    line = _allowed(node, workload_agent)[0]
    assert (line["subject"], line["roles"], line["via"]) == (SUBJECT, "profile-writer", f"workload:{WORKLOAD_AGENT}")
    # The kubelet's token, for the example's hour; the log names it by hash and times only.
    lifetime = datetime.fromisoformat(line["exp"]) - datetime.fromisoformat(line["iat"])
    assert lifetime.total_seconds() == 3600
    token = node.kubectl("exec", "-n", NAMESPACE, workload_agent, "--", "cat", "/var/run/tokenwarden/token").stdout
    assert token.count(".") == 2 and token not in node.logs(NAMESPACE, workload_agent)
    node.wait_until("the account counts its bound workload", lambda: (_account(node).get("status") or {}).get(
        "workloadIdentities") == 1)


def test_no_secret_exists_in_the_agents_namespace(node, workload_agent):
    secrets = node.json("get", "secrets", "-n", NAMESPACE)["items"]
    labelled = [s["metadata"]["name"] for s in secrets
                if any(k.startswith("tokenwarden.io/") for k in (s["metadata"].get("labels") or {}))]
    assert labelled == [] and [s["metadata"]["name"] for s in secrets] == []
    assert node.json("get", "servicetokens.tokenwarden.io", "-n", NAMESPACE)["items"] == []


@pytest.mark.parametrize("service_account, audience, reason", [
    ("default", "tokenwarden", "unbound"),            # a Kubernetes ServiceAccount no account lists
    (WORKLOAD_AGENT, None, "audience"),               # the listed one, for the Kubernetes API's audience
])
def test_tokens_outside_the_binding_are_refused(node, workload_agent, service_account, audience, reason):
    token = node.kubectl("create", "token", service_account, "-n", NAMESPACE, "--duration", "10m",
                         *(["--audience", audience] if audience else [])).stdout.strip()
    result = _probe_token(node, workload_agent, token)
    line = probe_lines(result.stdout)[0]
    assert (line["status"], line["reason"]) == ("401", reason), result.stdout + result.stderr
    assert token not in result.stdout


def test_disabling_the_account_refuses_its_pods_at_once(node, workload_agent):
    def new_lines(after: int) -> list[dict]:
        return probe_lines(node.logs(NAMESPACE, workload_agent))[after:]

    seen = len(probe_lines(node.logs(NAMESPACE, workload_agent)))
    node.kubectl("patch", "serviceaccounts.tokenwarden.io", "-n", NAMESPACE, ACCOUNT, "--type=merge",
                 "-p", '{"spec": {"disabled": true}}')
    node.wait_until("the agent's 401 disabled", lambda: any(
        (line.get("status"), line.get("reason")) == ("401", "disabled") for line in new_lines(seen)), timeout=60)
    seen = len(probe_lines(node.logs(NAMESPACE, workload_agent)))
    node.kubectl("patch", "serviceaccounts.tokenwarden.io", "-n", NAMESPACE, ACCOUNT, "--type=merge",
                 "-p", '{"spec": {"disabled": false}}')
    node.wait_until("the agent's 200 again", lambda: _allowed(node, workload_agent, seen), timeout=60)
