"""Neighbours: does a cluster full of other people's Secrets and ServiceAccounts cost the
operator or the authenticator anything?

One control plane. Each round measures the same work twice, without the neighbours and
with them (their order alternates between rounds, so that a machine that gets busier
favours neither): N Helm-release-like Secrets of S bytes spread over several namespaces,
and M Kubernetes ServiceAccounts no tokenwarden account names. Each measurement:

- a fresh operator mints 200 tokens (--tokens): the time until all are Active, and the
  operator's peak RSS;
- the operator is restarted: the time until it has settled (a probe token minted), and
  its peak RSS after the restart;
- an authenticator starts: the time until it is ready, and its peak RSS.

Printed: the median of the rounds for each, and with/without as a ratio.

    python bench/neighbours.py [--secrets 1000] [--size 200000] [--namespaces 5]
                               [--service-accounts 10000] [--tokens 200] [--rounds 3]
"""
from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import time

from kubernetes import client

from _harness import (GROUP, VERSION, api_client, control_plane, create_fleet, median, new_namespace,
                      operator_process, parallel, probe_settled, rss_mb, wait_all, wait_ready)
from tokenwarden.devcluster import free_port

NEIGHBOUR = {"owner": "helm", "bench.tokenwarden.io/neighbour": "true"}
MEASURES = (("mint", "s", "time to mint the tokens"), ("operator_rss", "MB", "operator peak RSS, minting"),
            ("settle", "s", "restart settle time"), ("restarted_rss", "MB", "operator peak RSS after a restart"),
            ("authn_ready", "s", "authenticator ready"), ("authn_rss", "MB", "authenticator peak RSS"))


def fill(core: client.CoreV1Api, namespaces: list[str], secrets: int, size: int, accounts: int) -> float:
    """Helm release Secrets (one per release revision, as Helm keeps them) and ServiceAccounts,
    spread over ``namespaces``; returns the seconds it took."""
    started = time.monotonic()
    payload = base64.b64encode(os.urandom(size * 3 // 4)).decode()  # a release is gzipped, base64'd JSON

    def secret(i: int) -> None:
        release, revision = f"app-{i // 4}", i % 4 + 1
        core.create_namespaced_secret(namespaces[i % len(namespaces)], client.V1Secret(
            metadata=client.V1ObjectMeta(name=f"sh.helm.release.v1.{release}.v{revision}", labels={
                **NEIGHBOUR, "name": release, "status": "deployed", "version": str(revision)}),
            type="helm.sh/release.v1", data={"release": payload}))

    def account(i: int) -> None:
        core.create_namespaced_service_account(namespaces[i % len(namespaces)], client.V1ServiceAccount(
            metadata=client.V1ObjectMeta(name=f"workload-{i}", labels=NEIGHBOUR)))

    parallel(secret, range(secrets), workers=8)
    parallel(account, range(accounts), workers=16)
    return time.monotonic() - started


def clear(core: client.CoreV1Api, namespaces: list[str]) -> None:
    selector = ",".join(f"{k}={v}" for k, v in NEIGHBOUR.items())
    for namespace in namespaces:
        core.delete_collection_namespaced_secret(namespace, label_selector=selector)
        core.delete_collection_namespaced_service_account(namespace, label_selector=selector)


def measure(plane, api, tokens: int) -> dict[str, float]:
    custom = client.CustomObjectsApi(api)
    namespace = new_namespace(api)
    accounts = max(1, tokens // 20)
    settings = f"quotas: {{maxTokensPerAccount: {tokens}, maxAccountsPerNamespace: {accounts}}}\n"
    found: dict[str, float] = {}
    with operator_process(plane, settings=settings) as operator:
        started = time.monotonic()
        create_fleet(custom, namespace, tokens, accounts)
        wait_all(api, namespace, "servicetokens", tokens, lambda o: (o.get("status") or {}).get("phase") == "Active",
                 timeout=3600)
        found["mint"] = time.monotonic() - started
        found["operator_rss"] = rss_mb(operator.pid)
    restarted = time.monotonic()
    with operator_process(plane, settings=settings) as operator:
        probe_settled(api, namespace, tokens)
        found["settle"] = time.monotonic() - restarted
        found["restarted_rss"] = rss_mb(operator.pid)
    port, metrics = free_port(), free_port()
    authn = subprocess.Popen([sys.executable, "-m", "tokenwarden", "authenticator", "--kubeconfig",
                              str(plane.kubeconfig), "--host", "127.0.0.1", "--port", str(port),
                              "--metrics-port", str(metrics)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        found["authn_ready"] = wait_ready(metrics)
        time.sleep(3)  # what it does once ready (its first writes of last use) counts too
        found["authn_rss"] = rss_mb(authn.pid)
    finally:
        authn.terminate()
        authn.wait(30)
    # The next measurement starts from as many tokens as this one did.
    for plural in ("servicetokens", "rolebindings", "serviceaccounts"):
        custom.delete_collection_namespaced_custom_object(GROUP, VERSION, namespace, plural)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--secrets", type=int, default=1000, help="foreign Secrets (N)")
    parser.add_argument("--size", type=int, default=200_000, help="bytes of each foreign Secret (S)")
    parser.add_argument("--namespaces", type=int, default=5, help="namespaces the neighbours live in")
    parser.add_argument("--service-accounts", type=int, default=10_000, help="foreign Kubernetes ServiceAccounts")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"without": [], "with": []}
    with control_plane() as plane:
        api = api_client(plane)
        core = client.CoreV1Api(api)
        homes = [new_namespace(api) for _ in range(args.namespaces)]
        for round_ in range(args.rounds):
            order = ("without", "with") if round_ % 2 == 0 else ("with", "without")
            for condition in order:
                if condition == "with":
                    took = fill(core, homes, args.secrets, args.size, args.service_accounts)
                    print(f"round {round_ + 1}: {args.secrets} Secrets of {args.size} bytes and "
                          f"{args.service_accounts} ServiceAccounts created in {took:.0f}s", flush=True)
                results[condition].append(measure(plane, api, args.tokens))
                print(f"round {round_ + 1}, {condition} neighbours: " + ", ".join(
                    f"{key} {value:.1f}" for key, value in results[condition][-1].items()), flush=True)
                if condition == "with":
                    clear(core, homes)
    print(f"\n{args.tokens} tokens; neighbours: {args.secrets} Secrets of {args.size} bytes in {args.namespaces} "
          f"namespaces, {args.service_accounts} ServiceAccounts; medians of {args.rounds} rounds")
    print(f"{'':36} {'without':>9} {'with':>9} {'with/without':>13}")
    for key, unit, title in MEASURES:
        without = median([r[key] for r in results["without"]])
        with_ = median([r[key] for r in results["with"]])
        print(f"{title + ' (' + unit + ')':36} {without:9.1f} {with_:9.1f} {with_ / without:12.2f}x")


if __name__ == "__main__":
    main()
