"""Mint throughput: N ServiceTokens created at once until all are Active, against the floor.

The floor is the same parallel client creating N Secrets and N custom objects with no
operator: what the API server itself costs. The peer is kube-controller-manager's token
controller filling N legacy service-account-token Secrets. Medians of --runs runs. The CPU
time each process used during the floor's runs and the timed runs says who the time went to;
--profile DIR samples the operator with py-spy during the timed runs and prints its top frames.

    python bench/mint_throughput.py [--tokens 500] [--runs 3] [--profile DIR]
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import os
import time
from pathlib import Path

from kubernetes import client

from _harness import (GROUP, VERSION, api_client, control_plane, cpu_seconds, median, new_namespace, operator_process,
                      parallel, percentile, profiled)


class CpuMeter:
    """CPU seconds each process used while the meter ran (summed over the runs it timed)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids, self.used = pids, dict.fromkeys(pids, 0.0)

    @contextlib.contextmanager
    def running(self):
        before = cpu_seconds(self.pids)
        yield
        after = cpu_seconds(self.pids)
        for name in self.pids:
            self.used[name] = self.used.get(name, 0.0) + after[name] - before[name]


def floor(api, n: int, meter: CpuMeter) -> float:
    namespace = new_namespace(api)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    started = time.monotonic()

    def one(i: int) -> None:
        core.create_namespaced_secret(namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name=f"floor-{i}"), data={"token": base64.b64encode(b"x" * 54).decode()}))
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "ingestionapikeys", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "IngestionAPIKey", "metadata": {"name": f"floor-{i}"},
            "spec": {}})

    with meter.running():
        parallel(one, range(n))
    elapsed = time.monotonic() - started
    # Leave nothing for the operator to mint when it starts for the timed runs.
    custom.delete_collection_namespaced_custom_object(GROUP, VERSION, namespace, "ingestionapikeys")
    core.delete_collection_namespaced_secret(namespace)
    return elapsed


def mint(api, n: int, meter: CpuMeter) -> tuple[float, list[float]]:
    from _harness import wait_all

    namespace = new_namespace(api)
    custom = client.CustomObjectsApi(api)
    created: dict[str, float] = {}
    started = time.monotonic()

    def one(i: int) -> None:
        name = f"tok-{i}"
        created[name] = time.monotonic()
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "ServiceToken", "metadata": {"name": name},
            "spec": {"roles": ["reader"]}})

    with meter.running():
        parallel(one, range(n))
        active = wait_all(api, namespace, "servicetokens", n,
                          lambda o: (o.get("status") or {}).get("phase") == "Active")
    elapsed = max(active.values()) - started
    latencies = [active[name] - created[name] for name in active]
    assert len(active) == n, f"only {len(active)} of {n} became Active"
    return elapsed, latencies


def legacy_token_controller(api, n: int) -> float:
    """kube-controller-manager filling n service-account-token Secrets."""
    namespace = new_namespace(api)
    core = client.CoreV1Api(api)
    parallel(lambda i: core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=f"sa-{i}"))), range(n))
    started = time.monotonic()
    parallel(lambda i: core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name=f"sa-{i}-token",
                                     annotations={"kubernetes.io/service-account.name": f"sa-{i}"}),
        type="kubernetes.io/service-account-token")), range(n))
    while True:
        secrets = core.list_namespaced_secret(namespace, field_selector="type=kubernetes.io/service-account-token")
        if sum(1 for s in secrets.items if (s.data or {}).get("token")) >= n:
            return time.monotonic() - started
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="directory for the operator's py-spy profile")
    args = parser.parse_args()
    n = args.tokens
    with control_plane() as plane:
        api = api_client(plane)
        pids = {"bench client": os.getpid(), **{p.name: p.popen.pid for p in plane._processes}}
        floor_cpu = CpuMeter(pids)
        floors = [floor(api, n, floor_cpu) for _ in range(args.runs)]
        peers = [legacy_token_controller(api, n) for _ in range(args.runs)]
        with operator_process(plane, settings="quotas: {maxTokensPerAccount: 100000}\n") as operator:
            mint_cpu = CpuMeter({**pids, "operator": operator.pid})
            profile = contextlib.nullcontext()
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
                profile = profiled(operator.pid, args.profile / "operator-mint.txt")
            with profile:
                runs = [mint(api, n, mint_cpu) for _ in range(args.runs)]
    mints = [r[0] for r in runs]
    latencies = [lat for r in runs for lat in r[1]]
    print(f"tokens per run: {n}, runs: {args.runs} (medians)")
    print(f"floor (API server, {n} Secrets + {n} objects, no operator): {median(floors):.2f}s")
    print(f"tokenwarden (create -> all Active with Secret):          {median(mints):.2f}s "
          f"= {median(mints) / median(floors):.2f}x the floor, {n / median(mints):.0f} tokens/s")
    print(f"create -> Active latency: p50 {percentile(latencies, 50):.2f}s, p99 {percentile(latencies, 99):.2f}s")
    print(f"kube-controller-manager token controller ({n} legacy SA tokens): {median(peers):.2f}s")
    for what, meter in (("floor", floor_cpu), ("tokenwarden", mint_cpu)):
        per_token = {name: 1000 * seconds / (n * args.runs) for name, seconds in meter.used.items()}
        print(f"CPU ms per token while timed, {what}: {sum(per_token.values()):.1f} = "
              + ", ".join(f"{name} {ms:.1f}" for name, ms in per_token.items()))


if __name__ == "__main__":
    main()
