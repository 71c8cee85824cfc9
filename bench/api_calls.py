"""API calls per minted token, from kube-apiserver's own request counters; or, with
--startup, what each process LISTs and WATCHes as it starts, from kube-apiserver's audit log.

    python bench/api_calls.py [--tokens 100]
    python bench/api_calls.py --startup [--tokens 12] [--accounts 3] [--linger 5]

--startup creates accounts, bindings and tokens in a namespace (so that no listing is
empty), then starts the operator alone until every token is Active and --linger seconds
more, stops it, and does the same with the authenticator (until ready, then --linger).
For each process's window it prints, per resource, namespace and selector, how many
listings (LIST without a continue token; pages: every LIST) and watches it opened; a
watch opened again after the one before it ended (the server's timeout) counts under
re-opened too. Below each table: anything listed or watched more than once, and any
resource followed under selectors that may select the same objects. The benchmark's own
client is left out by its User-Agent, the control plane's components by theirs.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from kubernetes import client

import _audit
from _harness import (BENCH_AGENT, GROUP, VERSION, api_client, authenticator_process, control_plane, create_fleet,
                      new_namespace, operator_process, parallel, request_counts, wait_all)

CONTROL_PLANE_AGENTS = ("kube-apiserver/", "kube-controller-manager/")


def now() -> datetime:
    return datetime.now(timezone.utc)


def report(name: str, audit_log: Path, since: datetime, until: datetime) -> None:
    requests = _audit.parse(audit_log.read_text().splitlines(), since, until,
                            ignore_agents=(BENCH_AGENT, *CONTROL_PLANE_AGENTS))
    rows = _audit.count(requests)
    print(f"{name}, {since:%H:%M:%S}–{until:%H:%M:%S} UTC ({(until - since).total_seconds():.0f} s):")
    for line in _audit.table(rows):
        print(f"  {line}")
    flags = _audit.doubled(rows)
    for flag in flags:
        print(f"  ! {flag}")
    if not flags:
        print("  nothing listed or watched twice, no selectors that may overlap")
    print()


def startup(tokens: int, accounts: int, linger: float) -> None:
    audit_log = Path(tempfile.mkdtemp(prefix="tokenwarden-audit-")) / "audit.log"
    with control_plane(audit_log=audit_log) as plane:
        api = api_client(plane)
        namespace = new_namespace(api)
        create_fleet(client.CustomObjectsApi(api), namespace, tokens, accounts)
        since = now()
        with operator_process(plane):
            wait_all(api, namespace, "servicetokens", tokens, lambda o: (o.get("status") or {}).get("phase") == "Active")
            settled = now()
            time.sleep(linger)
        until = now()
        print(f"{tokens} tokens of {accounts} accounts in {namespace}; the operator settled (all Active) "
              f"{(settled - since).total_seconds():.1f} s after its start\n")
        report("operator", audit_log, since, until)
        since = now()
        with authenticator_process(plane):
            time.sleep(linger)
        report("authenticator", audit_log, since, now())
    print(f"audit log: {audit_log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, help="tokens (100 by default; with --startup, 12)")
    parser.add_argument("--startup", action="store_true", help="LISTs and WATCHes per process, from the audit log")
    parser.add_argument("--accounts", type=int, default=3, help="with --startup: accounts the tokens belong to")
    parser.add_argument("--linger", type=float, default=5.0,
                        help="with --startup: seconds each process runs on once settled")
    args = parser.parse_args()
    if args.startup:
        startup(args.tokens or 12, args.accounts, args.linger)
        return
    n = args.tokens or 100
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
