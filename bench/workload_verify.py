"""Verification of a workload token (a Kubernetes service-account token, its TokenReview
cached) side by side with a minted token of the same account, on one authenticator, in one
run; and the cold path: a /verify whose TokenReview goes to kube-apiserver.

A local control plane issues the service-account tokens (the TokenRequest API, audience
tokenwarden) and answers the TokenReviews. The authenticator runs in this process on one
aiohttp server, its index filled in memory (the account, its binding's roles, a minted
token), with the real TokenReview client. wrk sends `Authorization: Bearer <token>` to
/verify for each token in turn; medians of --runs runs of --seconds each. The cold path
sends --cold fresh tokens one at a time (each a TokenReview), with the review rate limit
lifted so that the round trip is what is measured; also the TokenReview call alone.
Needs wrk (Debian: apt-get install wrk).

    python bench/workload_verify.py [--runs 3] [--seconds 5] [--cold 100]
"""
from __future__ import annotations

import argparse
import functools
import shutil
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request

from kubernetes import client

from _harness import api_client, control_plane, median, new_namespace
from tokenwarden.authn import Account, Authenticator, Identity, TokenIndex
from tokenwarden.authn._issuer import IssuerKeys
from tokenwarden.authn._tokenreview import KubeReviewer
from tokenwarden.authn._workload import WorkloadVerifier
from tokenwarden.config import Settings
from tokenwarden.devcluster import free_port
from tokenwarden.kube._issuer import read_issuer
from tokenwarden.policies import Binding
from tokenwarden.tokens import hash_token, mint_token
from verify_throughput import serve, wrk

K8S_ACCOUNT = "profiling-agent"
ACCOUNT = "profiler"


def build_index(namespace: str) -> tuple[TokenIndex, str]:
    """One account that lists the Kubernetes ServiceAccount, and a minted token of it."""
    index = TokenIndex()
    index.put_account((namespace, ACCOUNT), Account(uid="uid-profiler", workloads=(K8S_ACCOUNT,)))
    index.put_binding((namespace, f"{ACCOUNT}-profiles"), ACCOUNT, Binding(("profile-writer",)))
    token = mint_token("twst")
    index.put(Identity("ServiceToken", namespace, "agent", ACCOUNT, ("profile-writer",), "Active", None),
              [(hash_token(token), None)])
    return index, token


def service_account_token(core: client.CoreV1Api, namespace: str) -> str:
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
        audiences=["tokenwarden"], expiration_seconds=3600))
    return core.create_namespaced_service_account_token(K8S_ACCOUNT, namespace, request).status.token


def verify_once(url: str, token: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("X-Auth-Via", "")
    except urllib.error.HTTPError as refused:
        return refused.code, ""


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def wrk_bearer(url: str, token: str, seconds: int) -> tuple[float, float, float]:
    return wrk(url, f"Bearer {token}", seconds, header="Authorization")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--cold", type=int, default=100, help="fresh tokens for the cold path, per run")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    # The rate limit is lifted for the cold path's sequential reviews: its cost is what is measured.
    settings = Settings.model_validate({"workloadIdentity": {"reviewsPerSecond": 10_000, "reviewBurst": 10_000}})
    with control_plane() as plane:
        api = api_client(plane)
        core = client.CoreV1Api(api)
        namespace = new_namespace(api)
        core.create_namespaced_service_account(namespace, client.V1ServiceAccount(
            metadata=client.V1ObjectMeta(name=K8S_ACCOUNT)))
        index, minted = build_index(namespace)
        port = free_port()
        ready = threading.Event()
        workloads = WorkloadVerifier(settings.workload_identity, settings.audiences, index, KubeReviewer(api),
                                     time.time, IssuerKeys(functools.partial(read_issuer, api), time.monotonic))
        authenticator = Authenticator(settings, index, workloads=workloads)
        threading.Thread(target=serve, args=(index, port, ready), kwargs={"authenticator": authenticator},
                         daemon=True).start()
        ready.wait(30)
        url = f"http://127.0.0.1:{port}/verify?permission=write:profiles"

        workload = service_account_token(core, namespace)
        assert verify_once(url, minted) == (200, ""), "the minted token was not accepted"
        assert verify_once(url, workload) == (200, f"workload:{K8S_ACCOUNT}"), "the workload token was not accepted"

        # The cached path: one review above fills the cache for 60 s; each wrk run is shorter,
        # and a run that outlasts it pays one review in thousands of requests.
        cached, minted_runs = [], []
        for _ in range(args.runs):
            minted_runs.append(wrk_bearer(url, minted, args.seconds))
            verify_once(url, workload)
            cached.append(wrk_bearer(url, workload, args.seconds))
        w, m = median([r[0] for r in cached]), median([r[0] for r in minted_runs])
        print("token | verify req/s | p50 ms | p99 ms")
        print(f"minted | {m:12.0f} | {median([r[1] for r in minted_runs]):6.2f} | "
              f"{median([r[2] for r in minted_runs]):6.2f}")
        print(f"workload, cached | {w:12.0f} | {median([r[1] for r in cached]):6.2f} | "
              f"{median([r[2] for r in cached]):6.2f}")
        print(f"ratio workload/minted: {w / m:.2f} (goal 0.9; medians of {args.runs} runs of {args.seconds} s)")

        # The cold path: each fresh token is one TokenReview; and the TokenReview call alone.
        reviewer = KubeReviewer(api)
        cold_p50, cold_p99, bare_p50, bare_p99 = [], [], [], []
        for _ in range(args.runs):
            fresh = [service_account_token(core, namespace) for _ in range(2 * args.cold)]
            timings = []
            for token in fresh[:args.cold]:
                started = time.perf_counter()
                assert verify_once(url, token)[0] == 200
                timings.append((time.perf_counter() - started) * 1000)
            cold_p50.append(percentile(timings, 50))
            cold_p99.append(percentile(timings, 99))
            timings = []
            for token in fresh[args.cold:]:
                started = time.perf_counter()
                assert reviewer(token, ["tokenwarden"]).authenticated
                timings.append((time.perf_counter() - started) * 1000)
            bare_p50.append(percentile(timings, 50))
            bare_p99.append(percentile(timings, 99))
        print(f"cold /verify (a TokenReview each, {args.cold} tokens one at a time): "
              f"p50 {median(cold_p50):.2f} ms, p99 {median(cold_p99):.2f} ms")
        print(f"the TokenReview call alone: p50 {median(bare_p50):.2f} ms, p99 {median(bare_p99):.2f} ms")


if __name__ == "__main__":
    main()
