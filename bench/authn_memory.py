"""Peak memory of the authenticator with N tokens in the cluster, against its own floor.

The tokens are ServiceTokens with an Active status written directly (no operator), so
only the authenticator's listing, watch and index count. The floor is the same
authenticator started against no tokens in the same run; the figure that matters is
the peak RSS above that floor. Medians of --runs starts.

    python bench/authn_memory.py [--tokens 10000] [--runs 3]
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import time

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with control_plane() as plane:
        api = api_client(plane)
        custom = client.CustomObjectsApi(api)
        kubeconfig = str(plane.kubeconfig)
        floors = [peak_rss(kubeconfig)[0] for _ in range(args.runs)]
        namespace = new_namespace(api)

        def token(i: int) -> None:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "ServiceToken", "metadata": {"name": f"t-{i}"},
                "spec": {"roles": ["reader"]}})
            custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, "servicetokens", f"t-{i}", {
                "status": {"phase": "Active", "tokenId": str(10**14 + i), "effectiveRoles": ["reader"],
                           "tokenHash": "sha256:" + hashlib.sha256(f"bench-{i}".encode()).hexdigest(),
                           "issuedAt": "2026-01-01T00:00:00Z"}})

        parallel(token, range(args.tokens))
        loaded = [peak_rss(kubeconfig) for _ in range(args.runs)]
    floor, peak = median(floors), median([m for m, _ in loaded])
    print(f"authenticator peak RSS: {peak:.0f} MB with {args.tokens} tokens, {floor:.0f} MB with none "
          f"(medians of {args.runs}); {peak - floor:.0f} MB above the floor, "
          f"{(peak - floor) * 1024 / args.tokens:.1f} KB per token; ready in {median([r for _, r in loaded]):.1f} s")


if __name__ == "__main__":
    main()
