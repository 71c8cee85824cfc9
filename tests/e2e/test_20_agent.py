"""A DaemonSet agent from examples/, applied as written, mounts its token Secret as a
file and authenticates to the authenticator's Service over HTTPS, trusting the chart's CA;
rotation and expiry reach it. The public port serves no metrics."""
from __future__ import annotations

import base64
import re
import time
import uuid

import pytest

from .conftest import AUTHENTICATOR, CA_FILE, EXAMPLES, RELEASE, copy_authenticator_ca, running_pods, verify_url

AGENT_NS = "observability"
AGENT = "profiling-agent"
PERMISSION = "write:profiles"


def _short(token_hash: str) -> str:
    """How the probe names a token in its log: the first 12 hex digits of its hash."""
    return token_hash.removeprefix("sha256:")[:12]


def _token(node, namespace: str, name: str) -> dict:
    return node.json("get", "servicetokens.tokenwarden.io", "-n", namespace, name)


def _secret_value(node, namespace: str, secret: str, key: str = "token") -> str:
    data = node.json("get", "secret", "-n", namespace, secret)["data"]
    return base64.b64decode(data[key]).decode()


def _probe_once(node, namespace: str, pod: str, token: str, url: str = verify_url(PERMISSION),
                ca_file: str | None = CA_FILE):
    """Send ``token`` from inside the agent's pod (on stdin, never argv); the probe's result."""
    return node.kubectl("exec", "-i", "-n", namespace, pod, "--", "tokenwarden", "token", "probe", "--once",
                        "--token-file", "/dev/stdin", "--url", url, *(["--ca-file", ca_file] if ca_file else []),
                        input=token, check=False)


@pytest.fixture(scope="package")
def agent(node, release):
    """examples/agent-daemonset.yaml applied as written; returns when an agent got a 200."""
    applied = time.monotonic()
    # As the example's comment says: the namespace, and a copy of the authenticator's CA in it.
    node.kubectl("create", "namespace", AGENT_NS)
    copy_authenticator_ca(node, AGENT_NS)
    node.kubectl("apply", "-f", str(EXAMPLES / "agent-daemonset.yaml"))
    pod = node.wait_until("an agent pod running", lambda: next(iter(
        running_pods(node, AGENT_NS, f"app.kubernetes.io/name={AGENT}")), None))
    name = pod["metadata"]["name"]
    node.wait_until("the agent's first 200", lambda: "status=200" in node.logs(AGENT_NS, name))
    node.record("example agent applied to its first 200", time.monotonic() - applied)
    return name


def test_agent_authenticates_with_its_mounted_token(node, agent):
    daemonset = node.json("get", "daemonset", "-n", AGENT_NS, AGENT)
    volumes = daemonset["spec"]["template"]["spec"]["volumes"]
    mounts = daemonset["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert any(v.get("secret", {}).get("secretName") == f"{AGENT}-token" for v in volumes)
    assert not any("subPath" in m for m in mounts), "a subPath mount never sees a rotated Secret"

    token = _token(node, AGENT_NS, AGENT)
    log = node.logs(AGENT_NS, agent)
    assert f"status=200 token=sha256:{_short(token['status']['tokenHash'])}" in log
    assert "profile-writer" in log
    assert _secret_value(node, AGENT_NS, f"{AGENT}-token") not in log
    node.wait_until("lastUsedAt recorded", lambda: _token(node, AGENT_NS, AGENT)["status"].get("lastUsedAt"),
                    timeout=150)


def test_a_token_without_the_permission_gets_403(node, agent):
    token = _secret_value(node, AGENT_NS, f"{AGENT}-token")
    result = _probe_once(node, AGENT_NS, agent, token, verify_url("admin"))
    assert "status=403" in result.stdout and result.returncode != 0


def test_the_agent_verifies_the_authenticators_certificate(node, agent):
    """Without the chart's CA the handshake fails: the agent checks whom it sends its token to."""
    token = _secret_value(node, AGENT_NS, f"{AGENT}-token")
    untrusting = _probe_once(node, AGENT_NS, agent, token, ca_file=None)
    assert untrusting.returncode != 0 and "SSLCertVerificationError" in untrusting.stdout
    assert token not in untrusting.stdout


def test_metrics_are_not_served_on_the_public_port(node, agent):
    """/metrics and the health endpoints answer on the metrics port only; the public port,
    the one a proxy or an ingress exposes, does not serve them."""
    placeholder = "not-a-token-0123456789"
    for path in ("/metrics", "/healthz", "/readyz"):
        public = _probe_once(node, AGENT_NS, agent, placeholder, f"https://{AUTHENTICATOR}{path}")
        assert public.stdout.startswith("status=404"), public.stdout + public.stderr
    internal = _probe_once(node, AGENT_NS, agent, placeholder, f"http://{AUTHENTICATOR}:9090/metrics", ca_file=None)
    assert internal.stdout.startswith("status=200"), internal.stdout + internal.stderr


def test_rotation_replaces_each_agent_pod_once_and_retires_the_old_token(node, agent):
    before = _token(node, AGENT_NS, AGENT)
    old_hash = before["status"]["tokenHash"]
    old_token = _secret_value(node, AGENT_NS, f"{AGENT}-token")
    old_pods = {p["metadata"]["uid"] for p in node.pods(AGENT_NS, f"app.kubernetes.io/name={AGENT}")}
    generation = node.json("get", "daemonset", "-n", AGENT_NS, AGENT)["metadata"]["generation"]

    node.kubectl("annotate", "--overwrite", "servicetokens.tokenwarden.io", "-n", AGENT_NS, AGENT,
                 f"tokenwarden.io/rotate={uuid.uuid4().hex[:8]}")
    after = node.wait_until("the token rotated", lambda: (
        lambda t: t if t["status"].get("tokenHash") not in (None, old_hash) else None)(
        _token(node, AGENT_NS, AGENT)))
    new_hash = after["status"]["tokenHash"]

    pods = node.wait_until("every agent pod replaced", lambda: (
        lambda ps: ps if ps and not {p["metadata"]["uid"] for p in ps} & old_pods else None)(
        running_pods(node, AGENT_NS, f"app.kubernetes.io/name={AGENT}")))
    for pod in pods:
        node.wait_until("the new agent's 200 with the new token", lambda: re.search(
            rf"status=200 token=sha256:{_short(new_hash)}", node.logs(AGENT_NS, pod["metadata"]["name"])))

    daemonset = node.json("get", "daemonset", "-n", AGENT_NS, AGENT)
    assert daemonset["metadata"]["generation"] == generation + 1, "the DaemonSet was restarted more than once"
    assert "kubectl.kubernetes.io/restartedAt" in daemonset["spec"]["template"]["metadata"]["annotations"]

    # During the overlap (20 s in the release's values) the old token still verifies ...
    agent_pod = pods[0]["metadata"]["name"]
    # ... and after it, it is refused.
    line = node.wait_until("the old token refused after the overlap", lambda: (
        lambda out: out if "status=401" in out else None)(_probe_once(node, AGENT_NS, agent_pod, old_token).stdout),
        timeout=120, interval=3)
    assert "status=401" in line and old_token not in line
    assert _probe_once(node, AGENT_NS, agent_pod, _secret_value(node, AGENT_NS, f"{AGENT}-token")).stdout.startswith(
        "status=200")


def _probe_workload(namespace: str, name: str, secret: str, *, ttl: str, restart: bool) -> str:
    """An account, a binding, a token and a one-replica agent that mounts it, for one test."""
    rotation = (f"rotation: {{renewBefore: 10s, restartTargets: [{{kind: Deployment, name: {name}}}]}}"
                if restart else "")
    return f"""
apiVersion: tokenwarden.io/v1alpha1
kind: ServiceAccount
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{}}
---
apiVersion: tokenwarden.io/v1alpha1
kind: RoleBinding
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{serviceAccountName: {name}, roles: [profile-writer]}}
---
apiVersion: tokenwarden.io/v1alpha1
kind: ServiceToken
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{serviceAccountName: {name}, ttl: {ttl}, secretName: {secret}, {rotation}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      securityContext: {{runAsNonRoot: true, runAsUser: 10001, seccompProfile: {{type: RuntimeDefault}}}}
      containers:
        - name: agent
          image: tokenwarden:dev
          imagePullPolicy: Never
          args: [token, probe, --token-file, /var/run/tokenwarden/token, --url, "{verify_url(PERMISSION)}",
                 --ca-file, {CA_FILE}, --interval, 2s]
          securityContext: {{readOnlyRootFilesystem: true, allowPrivilegeEscalation: false,
                             capabilities: {{drop: [ALL]}}}}
          volumeMounts: [{{name: token, mountPath: /var/run/tokenwarden, readOnly: true}},
                         {{name: ca, mountPath: {CA_FILE.rsplit("/", 1)[0]}, readOnly: true}}]
      volumes: [{{name: token, secret: {{secretName: {secret}}}}},
                {{name: ca, configMap: {{name: {RELEASE}-authenticator-ca}}}}]
"""


def _agent_pod(node, namespace: str, name: str) -> str:
    pod = node.wait_until(f"{name} running", lambda: next(iter(running_pods(node, namespace, f"app={name}")), None))
    return pod["metadata"]["name"]


def test_kubelet_refreshes_a_rotated_secret_without_a_restart(node, fresh_namespace):
    ns = fresh_namespace
    node.kubectl("apply", "-f", "-", input=_probe_workload(ns, "steady", "steady-token", ttl="24h", restart=False))
    pod = _agent_pod(node, ns, "steady")
    first = _token(node, ns, "steady")["status"]["tokenHash"]
    node.wait_until("the agent's 200", lambda: f"status=200 token=sha256:{_short(first)}" in node.logs(ns, pod))

    node.kubectl("annotate", "servicetokens.tokenwarden.io", "-n", ns, "steady", "tokenwarden.io/rotate=now")
    second = node.wait_until("the token rotated", lambda: (
        lambda h: h if h != first else None)(_token(node, ns, "steady")["status"].get("tokenHash")))
    rotated = time.monotonic()
    node.wait_until("the mounted file refreshed", lambda: f"status=200 token=sha256:{_short(second)}"
                    in node.logs(ns, pod), timeout=240)
    node.record("kubelet refresh of a rotated Secret", time.monotonic() - rotated)
    # The same pod saw the new token: nothing restarted it.
    assert _agent_pod(node, ns, "steady") == pod


def test_expired_token_loses_its_secret_and_the_agent_gets_401(node, fresh_namespace):
    ns = fresh_namespace
    node.kubectl("apply", "-f", "-", input=_probe_workload(ns, "brief", "brief-token", ttl="45s", restart=False))
    pod = _agent_pod(node, ns, "brief")
    node.wait_until("the agent's 200", lambda: "status=200" in node.logs(ns, pod))
    node.wait_until("the token Expired", lambda: _token(node, ns, "brief")["status"].get("phase") == "Expired",
                    timeout=120)
    node.wait_until("its Secret deleted", lambda: node.kubectl(
        "get", "secret", "-n", ns, "brief-token", check=False).returncode != 0)
    node.wait_until("the agent's 401", lambda: re.search(r"status=401 .*reason=expired", node.logs(ns, pod)))
