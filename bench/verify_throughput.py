"""Verification throughput of the authenticator, against a no-op handler on the same server.

The index is filled in memory with N tokens (the watch that fills it in production is
not on the request path); wrk drives /verify and /noop in turn on one aiohttp server.
Medians of --runs runs of --seconds each. Needs wrk (Debian: apt-get install wrk).

    python bench/verify_throughput.py [--tokens 100,10000,100000] [--runs 3] [--seconds 5]
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
from tokenwarden.config import Settings
from tokenwarden.devcluster import free_port
from tokenwarden.tokens import hash_token, mint_token


def build_index(n: int) -> tuple[TokenIndex, str]:
    index = TokenIndex()
    token = ""
    for i in range(n):
        token = mint_token("twst")
        index.put(Identity("ServiceToken", f"ns-{i % 100}", f"t-{i}", f"acct-{i % 100}", ("writer",), "Active", None),
                  [(hash_token(token), None)])
        index.accounts[(f"ns-{i % 100}", f"acct-{i % 100}")] = Account(uid=f"uid-{i % 100}")
    return index, token


def serve(index: TokenIndex, port: int, ready: threading.Event, stop: asyncio.Event | None = None,
          authenticator: Authenticator | None = None) -> None:
    """The authenticator (default: one with default settings over ``index``) and /noop on one server."""
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

    asyncio.run(main())


def wrk(url: str, token: str, seconds: int, header: str = "X-API-Key") -> tuple[float, float, float]:
    """Requests/s, p50 and p99 (ms) of wrk sending ``<header>: <token>`` (32 connections)."""
    out = subprocess.run(["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", "-H", f"{header}: {token}", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def latency(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return rps, latency("50%"), latency("99%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", default="100,10000,100000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    print("tokens | verify req/s | no-op req/s | ratio | verify p50 ms | verify p99 ms")
    for n in (int(x) for x in args.tokens.split(",")):
        index, token = build_index(n)
        port = free_port()
        ready = threading.Event()
        threading.Thread(target=serve, args=(index, port, ready), daemon=True).start()
        ready.wait(30)
        base = f"http://127.0.0.1:{port}"
        assert subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"X-API-Key: {token}",
                               base + "/verify"], capture_output=True, text=True).stdout == "200"
        verify, noop = [], []
        for _ in range(args.runs):
            noop.append(wrk(base + "/noop", token, args.seconds))
            verify.append(wrk(base + "/verify", token, args.seconds))
        v, o = median([r[0] for r in verify]), median([r[0] for r in noop])
        print(f"{n:>6} | {v:12.0f} | {o:11.0f} | {v / o:5.2f} | {median([r[1] for r in verify]):13.2f} | "
              f"{median([r[2] for r in verify]):13.2f}")


if __name__ == "__main__":
    main()
