"""Expiry precision: N tokens expiring within the same minute; distribution of
(Secret deleted - expiresAt), from the API server's watch.

    python bench/expiry_precision.py [--tokens 1000]
"""
from __future__ import annotations

import argparse
import threading
import time
from datetime import datetime, timezone

from kubernetes import client, watch

from _harness import GROUP, VERSION, api_client, control_plane, new_namespace, operator_process, parallel, percentile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=1000)
    args = parser.parse_args()
    n = args.tokens
    with control_plane() as plane:
        api = api_client(plane)
        custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
        namespace = new_namespace(api)
        deleted: dict[str, datetime] = {}
        version = core.list_namespaced_secret(namespace).metadata.resource_version

        def watch_deletions() -> None:
            for event in watch.Watch().stream(core.list_namespaced_secret, namespace, resource_version=version,
                                              timeout_seconds=900):
                if event["type"] == "DELETED":
                    deleted[event["object"].metadata.name] = datetime.now(timezone.utc)
                if len(deleted) >= n:
                    return

        watcher = threading.Thread(target=watch_deletions, daemon=True)
        watcher.start()
        with operator_process(plane, settings="expiredRetention: 0s\n"):
            # Minting takes a while at this count: give every token a ttl that ends in the same minute.
            expiry = int(time.time()) + max(90, n // 10)
            expiry -= expiry % 60
            expiry += 60

            def one(i: int) -> None:
                ttl = max(1, expiry + (i % 60) - int(time.time()))
                custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", {
                    "apiVersion": f"{GROUP}/{VERSION}", "kind": "ServiceToken", "metadata": {"name": f"e-{i}"},
                    "spec": {"roles": ["reader"], "ttl": f"{ttl}s"}})

            parallel(one, range(n))
            watcher.join(timeout=expiry - time.time() + 300)
            tokens = {t["metadata"]["name"]: t for t in
                      custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens")["items"]}
    lags = []
    for name, token in tokens.items():
        expires = (token.get("status") or {}).get("expiresAt")
        if name in deleted and expires:
            at = datetime.fromisoformat(expires.replace("Z", "+00:00"))
            lags.append((deleted[name] - at).total_seconds())
    early = [lag for lag in lags if lag < 0]
    print(f"{len(lags)} of {n} tokens expired; Secret deleted - expiresAt: p50 {percentile(lags, 50):.2f}s, "
          f"p99 {percentile(lags, 99):.2f}s, max {max(lags):.2f}s; deleted early: {len(early)}")


if __name__ == "__main__":
    main()
