"""Scale: N ServiceTokens across 100 accounts. Peak RSS of the operator and the authenticator,
and the time a restarted operator takes to settle, with the number of tokens it re-minted.

--profile DIR samples the restarted operator with py-spy until it settles and prints its top frames.
--ttl gives every token a lifetime (each then has an expiry timer), as most tokens have.

    python bench/scale.py [--tokens 10000] [--accounts 100] [--ttl 30d] [--profile DIR]
"""
from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from kubernetes import client

from _harness import (GROUP, VERSION, api_client, control_plane, create_fleet, new_namespace,
                      operator_process, probe_settled, profiled, request_counts, rss_mb, steady_rss_mb, wait_all,
                      wait_ready)
from tokenwarden.devcluster import free_port


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(float(m) for m in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([\d.e+]+)$", text, re.M))


def _profile(directory: Path | None, pid: int):
    if directory is None:
        return contextlib.nullcontext()
    directory.mkdir(parents=True, exist_ok=True)
    return profiled(pid, directory / "operator-restart.txt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=10000)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--ttl", help="spec.ttl of every token (none by default: they never expire)")
    parser.add_argument("--profile", type=Path, help="directory for the restarted operator's py-spy profile")
    args = parser.parse_args()
    n, accounts = args.tokens, args.accounts
    settings = f"quotas: {{maxTokensPerAccount: {n}, maxAccountsPerNamespace: {accounts}}}\n"
    with control_plane() as plane:
        api = api_client(plane)
        custom = client.CustomObjectsApi(api)
        namespace = new_namespace(api)
        metrics_port = free_port()
        with operator_process(plane, settings=settings, extra=["--metrics-port", str(metrics_port)]) as operator:
            started = time.monotonic()
            create_fleet(custom, namespace, n, accounts, {"ttl": args.ttl} if args.ttl else None)
            # The backlog: tokens created but not yet Active when the last create returned.
            created_all = time.monotonic()
            listing = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens")
            backlog = sum(1 for o in listing["items"] if (o.get("status") or {}).get("phase") != "Active")
            del listing
            wait_all(api, namespace, "servicetokens", n, lambda o: (o.get("status") or {}).get("phase") == "Active",
                     timeout=3600)
            minted_in = time.monotonic() - started
            drained_in = time.monotonic() - created_all
            operator_rss = rss_mb(operator.pid)
        # The authenticator loads the whole index.
        port, authn_metrics = free_port(), free_port()
        authn = subprocess.Popen([sys.executable, "-m", "tokenwarden", "authenticator", "--kubeconfig",
                                  str(plane.kubeconfig), "--host", "127.0.0.1", "--port", str(port),
                                  "--metrics-port", str(authn_metrics)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        authn_ready = wait_ready(authn_metrics)
        time.sleep(5)
        authn_rss = rss_mb(authn.pid)
        authn.terminate()
        # A restarted operator: how long until a new token is minted (its queue is drained), and re-mints.
        metrics_port = free_port()
        before = request_counts(plane)
        restarted = time.monotonic()
        with operator_process(plane, settings=settings, extra=["--metrics-port", str(metrics_port)]) as operator, \
                _profile(args.profile, operator.pid):
            probe_settled(api, namespace, n)
            settle = time.monotonic() - restarted
            remints = metric(metrics_port, "tokenwarden_tokens_minted_total") - 1
            restarted_rss = rss_mb(operator.pid)
            idle_rss = steady_rss_mb(operator.pid)  # idle: its listing worked through, nothing changing
            after = request_counts(plane)
    print(f"{n} tokens across {accounts} accounts, minted in {minted_in:.0f}s ({n / minted_in:.0f}/s)")
    print(f"backlog when the last create returned: {backlog} tokens waiting, drained in {drained_in:.0f}s "
          f"({backlog / max(drained_in, 1e-9):.0f}/s)")
    print(f"operator peak RSS: {operator_rss:.0f} MB (after a restart: {restarted_rss:.0f} MB; "
          f"idle after it: {idle_rss:.0f} MB)")
    print(f"authenticator peak RSS: {authn_rss:.0f} MB, ready with the full index in {authn_ready:.1f}s")
    print(f"restarted operator settled (probe token minted) in {settle:.1f}s, re-mints: {remints:.0f}")
    calls = sorted(((after[k] - before.get(k, 0), k) for k in after), reverse=True)
    print("API requests while it settled: " + ", ".join(
        f"{verb} {resource} {count:.0f}" for count, (verb, resource) in calls if count >= n / 100))


if __name__ == "__main__":
    main()
