"""Peak memory of the authenticator with N tokens in the cluster, against its own floor.

The tokens are ServiceTokens with an Active status and no operator, so only the
authenticator's listing, watch and index count. One is created through the API (create,
then its status); the others are copies of what the API server stored for it, each with
its own name, uid, id and hash, written straight into etcd in transactions of 128
(100,000 tokens take a minute or two this way, where the API takes 30 minutes or more).
kube-apiserver serves them from etcd as any other object. The floor is the same
authenticator started against no tokens in the same run; the figure that matters is
the peak RSS above that floor. Medians of --runs starts.

    python bench/authn_memory.py [--tokens 10000,100000] [--runs 3] [--against DIR]

Several counts share one control plane and one floor: the tokens are added up to each count in turn.
``--against DIR`` measures another checkout's authenticator too (DIR holds its package, e.g.
an ``operator`` folder from ``git archive``), start for start in alternation with this one, so
that a change is measured before and after in the same run.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid

from kubernetes import client

from _harness import (GROUP, VERSION, api_client, control_plane, median, new_namespace, parallel, rss_mb,
                      wait_ready)
from tokenwarden.devcluster import free_port

SETTLE = 20.0  # seconds after readiness: the watches are running by then


def peak_rss(kubeconfig: str, package: str | None = None) -> tuple[float, float]:
    """(peak RSS in MB, seconds until ready) of one authenticator start; ``package``: the
    folder to import tokenwarden from instead of this process's."""
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": package} if package else None
    process = subprocess.Popen([sys.executable, "-m", "tokenwarden", "authenticator", "--kubeconfig", kubeconfig,
                                "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        ready = wait_ready(metrics_port)
        time.sleep(SETTLE)
        return rss_mb(process.pid), ready
    finally:
        process.terminate()
        process.wait(30)


def copy_tokens(plane, namespace: str, count: int, first: int = 1) -> None:
    """Tokens t-first … t-(count-1), copies of t-0 as the API server stored it."""
    prefix = f"/registry/{GROUP}/servicetokens/{namespace}/"
    stored = plane.etcd("/v3/kv/range", {"key": base64.b64encode(f"{prefix}t-0".encode()).decode()})
    template = json.loads(base64.b64decode(stored["kvs"][0]["value"]))

    def put(i: int) -> dict:
        body = json.loads(json.dumps(template))
        body["metadata"].update(name=f"t-{i}", uid=str(uuid.uuid4()))
        body["status"].update(tokenId=str(10**14 + i),
                              tokenHash="sha256:" + hashlib.sha256(f"bench-{i}".encode()).hexdigest())
        return {"request_put": {"key": base64.b64encode(f"{prefix}t-{i}".encode()).decode(),
                                "value": base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()}}

    def batch(start: int) -> None:
        plane.etcd("/v3/kv/txn", {"success": [put(i) for i in range(start, min(count, start + 128))]})

    parallel(batch, range(first, count, 128), workers=4)


def wait_listed(custom, namespace: str, count: int, timeout: float = 120) -> None:
    """Until the API server lists ``count`` tokens (its cache follows etcd's writes)."""
    deadline = time.monotonic() + timeout
    while True:
        listed = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", limit=1)
        seen = listed["metadata"].get("remainingItemCount", 0) + len(listed["items"])
        if seen == count:
            return
        if time.monotonic() > deadline:
            sys.exit(f"the API server lists {seen} tokens, not {count}")
        time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", default="10000,100000", help="token counts, comma-separated")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--against", help="another checkout's package folder, measured in alternation")
    args = parser.parse_args()
    versions = [("this checkout", None)] + ([(args.against, args.against)] if args.against else [])
    with control_plane() as plane:
        api = api_client(plane)
        custom = client.CustomObjectsApi(api)
        kubeconfig = str(plane.kubeconfig)
        floors = measure(kubeconfig, versions, args.runs)
        namespace = new_namespace(api)

        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "ServiceToken", "metadata": {"name": "t-0"},
            "spec": {"roles": ["reader"]}})
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, "servicetokens", "t-0", {
            "status": {"phase": "Active", "tokenId": str(10**14), "effectiveRoles": ["reader"],
                       "tokenHash": "sha256:" + hashlib.sha256(b"bench-0").hexdigest(),
                       "issuedAt": "2026-01-01T00:00:00Z"}})
        made = 1
        for label, _ in versions:
            floor = median([m for m, _ in floors[label]])
            print(f"{label}: authenticator peak RSS with no tokens: {floor:.1f} MB (median of {args.runs})", flush=True)
        for count in sorted(int(n) for n in args.tokens.split(",")):
            copy_tokens(plane, namespace, count, first=made)
            made = max(made, count)
            wait_listed(custom, namespace, count)
            loaded = measure(kubeconfig, versions, args.runs)
            for label, _ in versions:
                floor = median([m for m, _ in floors[label]])
                peak = median([m for m, _ in loaded[label]])
                print(f"{label}: authenticator peak RSS: {peak:.1f} MB with {count} tokens, {floor:.1f} MB with none "
                      f"(medians of {args.runs}; each {', '.join(f'{m:.1f}' for m, _ in loaded[label])}); "
                      f"{peak - floor:.1f} MB above the floor, {(peak - floor) * 1024 / count:.2f} KB per token; "
                      f"ready in {median([r for _, r in loaded[label]]):.1f} s", flush=True)


def measure(kubeconfig: str, versions: list[tuple[str, str | None]], runs: int) -> dict[str, list[tuple[float, float]]]:
    """``runs`` starts of each version, in alternation: (peak RSS, seconds until ready) by label."""
    found: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in versions}
    for _ in range(runs):
        for label, package in versions:
            found[label].append(peak_rss(kubeconfig, package))
    return found


if __name__ == "__main__":
    main()
