"""Peak memory of the authenticator with N tokens in the cluster, against its own floor.

The tokens are ServiceTokens with an Active status and no operator, so only the
authenticator's listing, watch and index count. One is created through the API (create,
then its status); the others are copies of what the API server stored for it, each with
its own name, uid, id and hash, written straight into etcd in transactions of 128
(100,000 tokens take a minute or two this way, where the API takes 30 minutes or more).
kube-apiserver serves them from etcd as any other object. The floor is the same
authenticator started against no tokens in the same run; the figure that matters is
the peak RSS above that floor. Medians of --runs starts.

    python bench/authn_memory.py [--tokens 10000,100000] [--runs 3]

Several counts share one control plane and one floor: the tokens are added up to each count in turn.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
import time
import uuid

from kubernetes import client

from _harness import (GROUP, VERSION, api_client, control_plane, median, new_namespace, parallel, rss_mb,
                      wait_ready)
from tokenwarden.devcluster import free_port

SETTLE = 20.0  # seconds after readiness: the watches are running by then


def peak_rss(kubeconfig: str) -> tuple[float, float]:
    """(peak RSS in MB, seconds until ready) of one authenticator start."""
    port, metrics_port = free_port(), free_port()
    process = subprocess.Popen([sys.executable, "-m", "tokenwarden", "authenticator", "--kubeconfig", kubeconfig,
                                "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
    args = parser.parse_args()
    with control_plane() as plane:
        api = api_client(plane)
        custom = client.CustomObjectsApi(api)
        kubeconfig = str(plane.kubeconfig)
        floors = [peak_rss(kubeconfig)[0] for _ in range(args.runs)]
        namespace = new_namespace(api)

        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "ServiceToken", "metadata": {"name": "t-0"},
            "spec": {"roles": ["reader"]}})
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, "servicetokens", "t-0", {
            "status": {"phase": "Active", "tokenId": str(10**14), "effectiveRoles": ["reader"],
                       "tokenHash": "sha256:" + hashlib.sha256(b"bench-0").hexdigest(),
                       "issuedAt": "2026-01-01T00:00:00Z"}})
        floor, made = median(floors), 1
        print(f"authenticator peak RSS with no tokens: {floor:.0f} MB (median of {args.runs})", flush=True)
        for count in sorted(int(n) for n in args.tokens.split(",")):
            copy_tokens(plane, namespace, count, first=made)
            made = max(made, count)
            wait_listed(custom, namespace, count)
            loaded = [peak_rss(kubeconfig) for _ in range(args.runs)]
            peak = median([m for m, _ in loaded])
            print(f"authenticator peak RSS: {peak:.0f} MB with {count} tokens, {floor:.0f} MB with none "
                  f"(medians of {args.runs}); {peak - floor:.0f} MB above the floor, "
                  f"{(peak - floor) * 1024 / count:.2f} KB per token; ready in "
                  f"{median([r for _, r in loaded]):.1f} s", flush=True)


if __name__ == "__main__":
    main()
