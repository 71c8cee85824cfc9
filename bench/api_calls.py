"""API calls per minted token, from kube-apiserver's own request counters.

    python bench/api_calls.py [--tokens 100]
"""
from __future__ import annotations

import argparse

from kubernetes import client

from _harness import (GROUP, VERSION, api_client, control_plane, new_namespace, operator_process, parallel,
                      request_counts, wait_all)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=100)
    args = parser.parse_args()
    n = args.tokens
    with control_plane() as plane:
        api = api_client(plane)
        with operator_process(plane, settings="quotas: {maxTokensPerAccount: 100000}\n"):
            namespace = new_namespace(api)
            custom = client.CustomObjectsApi(api)
            before = request_counts(plane)
            parallel(lambda i: custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "ServiceToken", "metadata": {"name": f"t-{i}"},
                "spec": {"roles": ["reader"]}}), range(n))
            wait_all(api, namespace, "servicetokens", n, lambda o: (o.get("status") or {}).get("phase") == "Active")
            import time
            time.sleep(3)  # let trailing writes (events, annotations) land before counting
            after = request_counts(plane)
    rows = []
    for key in sorted(set(after) | set(before)):
        delta = after.get(key, 0) - before.get(key, 0)
        if delta and key[0] not in ("WATCH", "LIST") and key[1] not in ("", "metrics"):
            rows.append((key, delta / n))
    # Our own test client's create calls are not the operator's.
    total = 0.0
    print(f"API calls per minted token ({n} tokens; the client's own create excluded):")
    for (verb, resource), per in rows:
        if (verb, resource) == ("POST", "servicetokens"):
            per -= 1
        if per <= 0.005:
            continue
        total += per
        print(f"  {verb:6} {resource:28} {per:5.2f}")
    print(f"  total                               {total:5.2f}")


if __name__ == "__main__":
    main()
