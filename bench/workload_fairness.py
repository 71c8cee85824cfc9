"""Whether real workloads keep their TokenReviews while others flood /verify: made-up JWTs,
then real, signed tokens minted in another namespace, each at several times the review
budget (default settings: 20 reviews/s, burst 40, a 2 s wait).

A local control plane issues the tokens (TokenRequest, audience tokenwarden) and answers
the TokenReviews; the authenticator runs in this process with the real TokenReview client
and issuer keys, its index in memory: one account listing --workloads Kubernetes
ServiceAccounts. Each workload presents a fresh token (so never a cached answer: the cost of
an expired cache entry), spread evenly over the run, while the flood goes on. Prints, per
phase, the workloads' answers (429s and 5xx expected: 0), the flood's, and the review rate
sent to kube-apiserver.

    python bench/workload_fairness.py [--workloads 200] [--seconds 20] [--flood-factor 10] [--signed-factor 5] [--review-wait 2s]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import functools
import json
import secrets
import threading
import time

import aiohttp
from kubernetes import client
from prometheus_client import REGISTRY

from _harness import api_client, control_plane, new_namespace, parallel
from tokenwarden.authn import Account, Authenticator, TokenIndex
from tokenwarden.authn._issuer import IssuerKeys
from tokenwarden.authn._tokenreview import KubeReviewer
from tokenwarden.authn._workload import WorkloadVerifier
from tokenwarden.config import Settings
from tokenwarden.devcluster import free_port
from tokenwarden.kube._issuer import read_issuer
from tokenwarden.policies import Binding
from verify_throughput import serve


def token_for(core: client.CoreV1Api, namespace: str, name: str) -> str:
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
        audiences=["tokenwarden"], expiration_seconds=3600))
    return core.create_namespaced_service_account_token(name, namespace, request).status.token


def made_up(kid: str) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
    claims = {"aud": ["tokenwarden"], "exp": int(time.time()) + 600, "jti": secrets.token_hex(8),
              "sub": "system:serviceaccount:victims:agent-0"}
    return f"{part({'alg': 'RS256', 'kid': kid})}.{part(claims)}.{secrets.token_urlsafe(256)}"


def reviews_sent() -> float:
    return sum(REGISTRY.get_sample_value("tokenwarden_workload_tokenreviews_total", {"result": r}) or 0.0
               for r in ("authenticated", "rejected", "error"))


async def run_phase(url: str, workloads: list[str], flood: list[str], seconds: float) -> dict:
    """Send ``workloads`` evenly over ``seconds`` and ``flood`` evenly over the same time."""
    answers: dict[str, collections.Counter] = {"workloads": collections.Counter(), "flood": collections.Counter()}

    async def send(session: aiohttp.ClientSession, kind: str, token: str) -> None:
        try:
            async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
                answers[kind][response.status] += 1
        except aiohttp.ClientError as exc:
            answers[kind][type(exc).__name__] += 1

    async def schedule(session, kind: str, tokens: list[str], tasks: list) -> None:
        start = time.monotonic()
        for i, token in enumerate(tokens):
            await asyncio.sleep(max(0.0, start + i * seconds / len(tokens) - time.monotonic()))
            tasks.append(asyncio.create_task(send(session, kind, token)))

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        tasks: list = []
        before, started = reviews_sent(), time.monotonic()
        await asyncio.gather(schedule(session, "workloads", workloads, tasks), schedule(session, "flood", flood, tasks))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
    return {**answers, "reviews/s": (reviews_sent() - before) / elapsed, "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workloads", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--flood-factor", type=float, default=10, help="made-up JWTs' rate, times the review rate")
    parser.add_argument("--signed-factor", type=float, default=5,
                        help="signed tokens' rate, times the review rate (each is a TokenRequest ahead of the run)")
    parser.add_argument("--review-wait", default="2s",
                        help="workloadIdentity.reviewWait; 0s: no wait, so no turns (a plain rate limit)")
    args = parser.parse_args()
    settings = Settings.model_validate({"workloadIdentity": {"reviewWait": args.review_wait}})
    rate = settings.workload_identity.reviews_per_second
    with control_plane() as plane:
        api = api_client(plane)
        core = client.CoreV1Api(api)
        victims, tenant = new_namespace(api), new_namespace(api)
        names = [f"agent-{i}" for i in range(args.workloads)]
        parallel(lambda n: core.create_namespaced_service_account(
            victims, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=n))), names)
        core.create_namespaced_service_account(tenant, client.V1ServiceAccount(
            metadata=client.V1ObjectMeta(name="minter")))
        index = TokenIndex()
        index.put_account((victims, "agents"), Account(uid="uid-agents", workloads=tuple(names)))
        index.put_binding((victims, "agents-profiles"), "agents", Binding(("profile-writer",)))
        workloads = WorkloadVerifier(settings.workload_identity, settings.audiences, index, KubeReviewer(api),
                                     time.time, IssuerKeys(functools.partial(read_issuer, api), time.monotonic))
        port, ready = free_port(), threading.Event()
        threading.Thread(target=serve, args=(index, port, ready),
                         kwargs={"authenticator": Authenticator(settings, index, workloads=workloads)},
                         daemon=True).start()
        ready.wait(30)
        url = f"http://127.0.0.1:{port}/verify"
        flood_count = int(rate * args.flood_factor * args.seconds)

        def fresh_workload_tokens() -> list[str]:
            tokens: list[str] = [""] * len(names)

            def mint(i: int) -> None:
                tokens[i] = token_for(core, victims, names[i])
            parallel(mint, range(len(names)))
            return tokens

        header = token_for(core, victims, names[0]).split(".")[0]
        kid = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
        print(f"{args.workloads} workloads over {args.seconds:.0f} s; review budget {rate}/s, burst "
              f"{settings.workload_identity.review_burst}, wait {settings.workload_identity.review_wait}")
        print("phase | workloads' answers | flood's answers | reviews/s sent")
        phases = {"made-up JWTs": lambda: [made_up(kid) for _ in range(flood_count)]}
        # Signed tokens: minted ahead (TokenRequest), as a tenant allowed to create them would.
        signed = [""] * int(rate * args.signed_factor * args.seconds)

        def mint_signed() -> list[str]:
            parallel(lambda i: signed.__setitem__(i, token_for(core, tenant, "minter")), range(len(signed)))
            return signed
        phases["signed tokens of another namespace"] = mint_signed
        for phase, flood in phases.items():
            tokens, flooding = fresh_workload_tokens(), flood()
            result = asyncio.run(run_phase(url, tokens, flooding, args.seconds))
            print(f"{phase} ({len(flooding)} at {len(flooding) / args.seconds:.0f}/s) | "
                  f"{dict(result['workloads'])} | {dict(result['flood'])} | {result['reviews/s']:.1f}")


if __name__ == "__main__":
    main()
