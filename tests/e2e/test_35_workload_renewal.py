"""The kubelet's renewal of a projected service-account token reaches a running agent, which
authenticates with the new token without a restart. The agent (``renewing_agent``, with the
shortest token Kubernetes allows) was started early in the tier, so most of the wait for the
kubelet's renewal (after 80 % of 600 s) has passed in the tests before this one."""
from __future__ import annotations

import re
import time

from .conftest import NAMESPACE, RELEASE, SHORTEST_PROJECTED_TOKEN, WORKLOAD_AGENT, probe_lines, running_pods

AUTHENTICATORS = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=authenticator"
SELECTOR = f"app.kubernetes.io/name={WORKLOAD_AGENT}"
SCRAPE = ("import sys, urllib.request\n"
          "for ip in sys.argv[1:]:\n"
          "    print(urllib.request.urlopen(f'http://{ip}:9090/metrics', timeout=5).read().decode())\n")


def _metric(text: str, name: str, labels: str) -> float:
    """The sum of ``name{labels}`` over every scraped authenticator."""
    return sum(float(value) for value in re.findall(rf"^{name}\{{{labels}\}} (\S+)$", text, re.MULTILINE))


def test_the_kubelets_renewal_of_the_projected_token_is_picked_up(node, renewing_agent):
    ns = renewing_agent.namespace
    (pod,) = node.wait_until("the short-lived agent running", lambda: running_pods(node, ns, SELECTOR))
    name = pod["metadata"]["name"]

    def allowed() -> list[dict]:
        return [line for line in probe_lines(node.logs(ns, name)) if line.get("status") == "200"]

    first = node.wait_until("the short-lived agent's first 200", allowed)[0]
    # The renewal comes 480 s after the token was issued, at the pod's next sync (up to ~90 s later);
    # the old token expires at 600 s. Wait only for what is left of that.
    left = SHORTEST_PROJECTED_TOKEN + 60 - (time.monotonic() - renewing_agent.applied_at)
    waited = time.monotonic()
    renewed = node.wait_until("a 200 with the kubelet's renewed token", lambda: next(
        (line for line in allowed() if line["iat"] > first["iat"]), None), timeout=max(left, 30), interval=5)
    node.record("wait for the kubelet's projected-token renewal at the end of the tier", time.monotonic() - waited)

    assert renewed["token"] != first["token"] and renewed["exp"] > first["exp"]
    assert renewed["subject"] == first["subject"] and renewed["via"] == f"workload:{WORKLOAD_AGENT}"
    # The same container read the new file: nothing restarted it.
    (now,) = running_pods(node, ns, SELECTOR)
    assert now["metadata"]["uid"] == pod["metadata"]["uid"]
    assert now["status"]["containerStatuses"][0]["restartCount"] == 0

    account = node.json("get", "serviceaccounts.tokenwarden.io", "-n", ns, "profiler")["status"]
    assert account.get("workloadIdentities") == 1 and account.get("lastUsedAt")

    # Every request was answered from a TokenReview or from its cache, and both were used.
    ips = [p["status"]["podIP"] for p in running_pods(node, NAMESPACE, AUTHENTICATORS)]
    metrics = node.kubectl("exec", "-n", ns, name, "--", "python3", "-c", SCRAPE, *ips).stdout
    assert _metric(metrics, "tokenwarden_workload_tokenreviews_total", 'result="authenticated"') >= 2
    assert _metric(metrics, "tokenwarden_workload_cache_total", 'result="hit"') > 0
