"""Verification throughput of the authenticator, against a no-op handler on the same server.

The index is filled in memory with N tokens (the watch that fills it in production is
not on the request path); wrk drives /verify and /noop in turn on one aiohttp server.
Medians of --runs runs of --seconds each, on the authenticator's event loop (--event-loop,
asyncio's own by default as in `tokenwarden authenticator`). Needs wrk (Debian: apt-get install wrk).

--ab compares the event loops in one run: one server per loop (uvloop's, asyncio's own), the
same index, each with its own /noop; --runs rounds (5 by default), each measuring both
loops in turn, the order of the loops and of /verify and /noop alternating from round to
round. Per loop: medians of verifications/s, no-op requests/s, their ratio (the median of
the rounds' ratios, and its range) and p99s.

    python bench/verify_throughput.py [--tokens 100,10000,100000] [--runs 3] [--seconds 5]
    python bench/verify_throughput.py --ab [--runs 5]
"""
from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import threading

from aiohttp import web

from _harness import median
from tokenwarden.authn import Account, Authenticator, Identity, TokenIndex
from tokenwarden.authn._http import QuietAppRunner
from tokenwarden.authn._run import EVENT_LOOPS, loop_factory
from tokenwarden.config import Settings
from tokenwarden.devcluster import free_port
from tokenwarden.policies import Binding
from tokenwarden.tokens import hash_token, mint_token


def build_index(n: int) -> tuple[TokenIndex, str]:
    index = TokenIndex()
    token = ""
    for i in range(n):
        token = mint_token("twst")
        index.put(Identity("ServiceToken", f"ns-{i % 100}", f"t-{i}", f"acct-{i % 100}", ("writer",), "Active", None),
                  [(hash_token(token), None)])
        index.accounts[(f"ns-{i % 100}", f"acct-{i % 100}")] = Account(uid=f"uid-{i % 100}")
    for i in range(min(n, 100)):
        index.put_binding((f"ns-{i}", f"acct-{i}-writer"), f"acct-{i}", Binding(("writer",)))
    return index, token


def serve(index: TokenIndex, port: int, ready: threading.Event, stop: asyncio.Event | None = None,
          authenticator: Authenticator | None = None, event_loop: str = EVENT_LOOPS[0]) -> None:
    """The authenticator (default: one with default settings over ``index``) and /noop on one
    server, on the event loop named ``event_loop``."""
    async def main() -> None:
        app = (authenticator or Authenticator(Settings(), index)).app()

        async def noop(_: web.Request) -> web.Response:
            return web.json_response({"allowed": True, "subject": "noop"}, headers={"X-Auth-Subject": "noop"})

        app.router.add_get("/noop", noop)
        runner = QuietAppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    with asyncio.Runner(loop_factory=loop_factory(event_loop)) as runner:
        runner.run(main())


def wrk(url: str, token: str, seconds: int, header: str = "X-API-Key") -> tuple[float, float, float]:
    """Requests/s, p50 and p99 (ms) of wrk sending ``<header>: <token>`` (32 connections)."""
    out = subprocess.run(["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", "-H", f"{header}: {token}", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def latency(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return rps, latency("50%"), latency("99%")


def start(index: TokenIndex, token: str, event_loop: str) -> str:
    """A server in a thread of its own on ``event_loop``; its base URL, once /verify says 200."""
    port = free_port()
    ready = threading.Event()
    threading.Thread(target=serve, args=(index, port, ready), kwargs={"event_loop": event_loop}, daemon=True).start()
    ready.wait(30)
    base = f"http://127.0.0.1:{port}"
    assert subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"X-API-Key: {token}",
                           base + "/verify"], capture_output=True, text=True).stdout == "200"
    return base


def compare_loops(n: int, index: TokenIndex, token: str, rounds: int, seconds: int) -> None:
    """The A/B of --ab for ``n`` tokens: both loops in each round, in alternating order."""
    bases = {loop: start(index, token, loop) for loop in EVENT_LOOPS}
    for base in bases.values():  # warm-up, not counted
        wrk(base + "/noop", token, 1)
        wrk(base + "/verify", token, 1)
    results: dict[str, dict[str, list[tuple[float, float, float]]]] = {
        loop: {"verify": [], "noop": []} for loop in EVENT_LOOPS}
    for r in range(rounds):
        loops = EVENT_LOOPS if r % 2 == 0 else EVENT_LOOPS[::-1]
        paths = ("noop", "verify") if r % 2 == 0 else ("verify", "noop")
        for loop in loops:
            for path in paths:
                results[loop][path].append(wrk(f"{bases[loop]}/{path}", token, seconds))
    verify_rate = {}
    for loop in EVENT_LOOPS:
        verify, noop = results[loop]["verify"], results[loop]["noop"]
        ratios = [v[0] / o[0] for v, o in zip(verify, noop)]
        verify_rate[loop] = median([v[0] for v in verify])
        print(f"{n:>7} | {loop:<7} | {verify_rate[loop]:12.0f} | {median([o[0] for o in noop]):11.0f} | "
              f"{median(ratios):5.2f} | {min(ratios):4.2f}-{max(ratios):4.2f} | "
              f"{median([v[2] for v in verify]):13.2f} | {median([o[2] for o in noop]):12.2f}", flush=True)
    print(f"{n:>7} | verifications/s on uvloop against asyncio: {verify_rate['uvloop'] / verify_rate['asyncio']:.2f}x",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", default="100,10000,100000")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (3), or rounds with --ab (5)")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--event-loop", choices=EVENT_LOOPS, default=EVENT_LOOPS[0])
    parser.add_argument("--ab", action="store_true", help="compare the event loops in one run")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    if args.ab:
        rounds = args.runs or 5
        print(f"{rounds} rounds of {args.seconds} s per loop and path; medians; ratio: /verify over /noop "
              "on the same server (median of the rounds' ratios, and their range)")
        print(" tokens | loop    | verify req/s | no-op req/s | ratio | range     | verify p99 ms | no-op p99 ms")
        for n in (int(x) for x in args.tokens.split(",")):
            index, token = build_index(n)
            compare_loops(n, index, token, rounds, args.seconds)
        return
    runs = args.runs or 3
    print(f"event loop: {args.event_loop}")
    print("tokens | verify req/s | no-op req/s | ratio | verify p50 ms | verify p99 ms")
    for n in (int(x) for x in args.tokens.split(",")):
        index, token = build_index(n)
        base = start(index, token, args.event_loop)
        verify, noop = [], []
        for _ in range(runs):
            noop.append(wrk(base + "/noop", token, args.seconds))
            verify.append(wrk(base + "/verify", token, args.seconds))
        v, o = median([r[0] for r in verify]), median([r[0] for r in noop])
        print(f"{n:>6} | {v:12.0f} | {o:11.0f} | {v / o:5.2f} | {median([r[1] for r in verify]):13.2f} | "
              f"{median([r[2] for r in verify]):13.2f}")


if __name__ == "__main__":
    main()
