"""A leaked token in one command, on the node: the example agent (examples/agent-daemonset.yaml)
runs with its token; `tokenwarden token revoke --leaked` gets the value on stdin; the old
token is refused as soon as the command returns, and the agents come back on the successor,
which the operator minted into the same Secret with no overlap and rolled the DaemonSet for."""
from __future__ import annotations

import base64
import subprocess
import sys
import time

import yaml

from .conftest import CA_FILE, EXAMPLES, verify_url

AGENT = "profiling-agent"
SELECTOR = f"app.kubernetes.io/name={AGENT}"


def _example_in(namespace: str) -> str:
    """examples/agent-daemonset.yaml as written, in ``namespace`` instead of its own, and a pod
    that no rotation restarts, to send tokens from while the agents are replaced."""
    documents = [d for d in yaml.safe_load_all((EXAMPLES / "agent-daemonset.yaml").read_text())
                 if d and d["kind"] != "Namespace"]
    for document in documents:
        document["metadata"]["namespace"] = namespace
    agent_pod = next(d for d in documents if d["kind"] == "DaemonSet")["spec"]["template"]["spec"]
    documents.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "prober", "namespace": namespace},
                      "spec": {**agent_pod, "containers": [{**agent_pod["containers"][0], "name": "prober",
                                                            "imagePullPolicy": "Never"}]}})
    return yaml.safe_dump_all(documents)


def _ready_pods(node, namespace: str) -> list[dict]:
    return [p for p in node.pods(namespace, SELECTOR)
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
            and all(c.get("ready") for c in p["status"].get("containerStatuses", []))]


def _secret_token(node, namespace: str) -> str:
    return base64.b64decode(node.json("get", "secret", "-n", namespace, f"{AGENT}-token")["data"]["token"]).decode()


def _token_hash(node, namespace: str) -> str:
    return node.json("get", "servicetokens.tokenwarden.io", "-n", namespace, AGENT)["status"]["tokenHash"]


def _probe(node, namespace: str, token: str, pod: str = "prober") -> str:
    """The token sent from inside a pod of the namespace (on stdin), once: the probe's line."""
    return node.kubectl("exec", "-i", "-n", namespace, pod, "--", "tokenwarden", "token", "probe", "--once",
                        "--token-file", "/dev/stdin", "--url", verify_url("write:profiles"), "--ca-file", CA_FILE,
                        input=token, check=False).stdout


def test_a_leaked_token_is_refused_at_once_and_the_agents_come_back_on_its_successor(node, fresh_namespace):
    ns = fresh_namespace
    node.kubectl("apply", "-f", "-", input=_example_in(ns))
    pod = node.wait_until("an agent running", lambda: next(iter(_ready_pods(node, ns)), None))["metadata"]["name"]
    node.wait_until("the agent's 200", lambda: "status=200" in node.logs(ns, pod))
    node.wait_until("the prober running", lambda: node.json("get", "pod", "-n", ns, "prober")["status"].get(
        "phase") == "Running")
    leaked, leaked_hash = _secret_token(node, ns), _token_hash(node, ns)
    sent = time.monotonic()
    assert _probe(node, ns, leaked).startswith("status=200")
    round_trip = time.monotonic() - sent  # kubectl exec and the probe's start in the pod, for comparison
    old_pods = {p["metadata"]["uid"] for p in node.pods(ns, SELECTOR)}

    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "tokenwarden", "token", "revoke", "--leaked",
                           "--kubeconfig", str(node.kubeconfig)], input=leaked, capture_output=True, text=True,
                          timeout=180)
    returned = time.monotonic()
    assert done.returncode == 0, done.stderr
    assert f"ServiceToken {ns}/{AGENT}" in done.stdout and "restart targets rolled: DaemonSet/profiling-agent" \
        in done.stdout
    assert leaked not in done.stdout + done.stderr

    # The first attempt after the command returns is refused: no waiting for the authenticator.
    refused = _probe(node, ns, leaked)
    refused_at = time.monotonic()
    # Replaced by now: the old value is no credential's any more (unknown); before, it was leaked.
    assert refused.startswith("status=401") and leaked not in refused, refused

    successor_hash = _token_hash(node, ns)
    assert successor_hash != leaked_hash
    short = successor_hash.removeprefix("sha256:")[:12]
    pods = node.wait_until("every agent pod replaced", lambda: (
        lambda ps: ps if ps and not {p["metadata"]["uid"] for p in ps} & old_pods else None)(_ready_pods(node, ns)))
    for new_pod in pods:
        node.wait_until("the agent's 200 on the successor", lambda: f"status=200 token=sha256:{short}"
                        in node.logs(ns, new_pod["metadata"]["name"]), timeout=180)
    back = time.monotonic()
    secret = node.json("get", "secret", "-n", ns, f"{AGENT}-token")["data"]
    assert set(secret) == {"token"}  # no token.previous: no overlap for a leak
    assert _probe(node, ns, leaked, pods[0]["metadata"]["name"]).startswith("status=401")

    node.record("leak: revoke --leaked returned (successor minted)", returned - started)
    node.record("leak: leaked token refused, first probe after the command (exec round trip)", refused_at - returned)
    node.record("leak: a probe's exec round trip, for comparison", round_trip)
    node.record("leak: agents back on the successor, from the command", back - started)
