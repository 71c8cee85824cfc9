"""Randomised faults: a few hundred random operations on accounts, bindings, tokens, keys and
imports, while the operator is killed (-9), kube-apiserver and etcd restart and watches
expire (etcd compacted: real 410s); then, once the system has settled, the invariants:

- every Active token's status.tokenHash matches the token in its Secret (or token.previous
  during an overlap), mid-run whenever a client could look, and at the end;
- nothing deleted or revoked verifies, every live Active token does, with no role that no
  live binding grants;
- nothing revoked or expired is revived; no token is minted twice;
- no Secret is left with an owner reference to a token that does not exist.

The seed is printed at the start and in every failure: replay with
``pytest tests/integration/test_faults.py --fault-seed SEED --fault-ops N`` (the faults land
at the same operations; the operator's timing differs from run to run). Longer runs:
``--fault-ops 2000 --timeout 0``.
"""
from __future__ import annotations

import random
import re
import time
from collections import Counter

import pytest
import yaml

from ..conftest import FAULT_REPORT, TEST_SETTINGS
from .faults._invariants import (
    history_violations,
    mint_events,
    read_world,
    sandwich_check,
    state_violations,
    verification_violations,
)
from .faults._ops import Down, Faults, Operations
from .faults._record import Recorder

SETTLE_TIMEOUT = 300.0  # seconds: a bound on waiting, not a speed requirement
MAX_TOKENS = yaml.safe_load(TEST_SETTINGS)["quotas"]["maxTokensPerAccount"]
GONE = re.compile(r"\b410\b|too old resource version", re.IGNORECASE)

pytestmark = pytest.mark.faults


def _settle(api_client, namespace, recorder, operations, authenticator) -> tuple[list[str], float]:
    """Check the state until it holds or the timeout passes; the last check's violations."""
    started = time.monotonic()
    while True:
        try:
            world = read_world(api_client, namespace)
            history = operations.history
            current = state_violations(world, history.revoked_with_account, MAX_TOKENS)
            current += verification_violations(world, recorder, history.import_values,
                                               history.revoked_with_account, authenticator)
        except Exception as exc:  # the API server or the authenticator not answering
            current = [f"unreadable: {type(exc).__name__}: {exc}"[:300]]
        if not current or time.monotonic() - started > SETTLE_TIMEOUT:
            return current, time.monotonic() - started
        time.sleep(2)


def test_random_operations_with_faults_break_no_invariant(request, cluster, operator, authenticator, api_client,
                                                         core, custom, namespace):
    if cluster.plane is None:
        pytest.skip("faults are staged on the local control plane")
    seed = request.config.getoption("--fault-seed")
    seed = random.SystemRandom().randrange(2**32) if seed is None else seed
    total = request.config.getoption("--fault-ops")
    replay = f"replay: pytest {request.node.nodeid} --fault-seed {seed} --fault-ops {total}"
    print(f"\nrandomised faults: seed {seed}, {total} operations ({replay})")
    logs_from = {"operator": len(operator.log()), "authenticator": len(authenticator.log())}

    recorder = Recorder(cluster.kubeconfig, namespace)
    recorder.start()
    operations = Operations(random.Random(seed), custom, core, namespace, seed)
    faults = Faults(random.Random(f"{seed}/faults"), cluster.plane, operator)
    plan = faults.plan(total, max(5, total // 40))
    pace = random.Random(f"{seed}/pace")
    mid_run: list[str] = []
    started = time.monotonic()
    done = down = 0
    try:
        while done < total:
            while plan and plan[0][0] <= done:
                faults.inject(plan.pop(0)[1])
            try:
                operations.step()
            except Down:
                down += 1
                time.sleep(0.5)
                continue
            done += 1
            if pace.random() < 0.15:
                kind = pace.choice(["ServiceToken", "IngestionAPIKey"])
                name = pace.choice(operations.tokens if kind == "ServiceToken" else operations.keys)
                try:
                    found = sandwich_check(api_client, namespace, kind, name)
                except Exception:  # gone, or the API server is down: nothing to judge
                    found = None
                if found:
                    mid_run.append(found)
            time.sleep(pace.uniform(0, 0.3))
    finally:
        faults.finish()
        operations_seconds = time.monotonic() - started
    current, settle_seconds = _settle(api_client, namespace, recorder, operations, authenticator)
    recorder.stop()
    history, unjudged = history_violations(recorder, mint_events(core, namespace))

    violations = mid_run + history + current
    violations += [f"fault-failed: {f.kind}: {f.error}" for f in faults.log if f.error]
    for name, process in (("operator", operator), ("authenticator", authenticator)):
        if process.process.poll() is not None:
            violations.append(f"crashed: the {name} exited with {process.process.returncode}")
    if operator.process.poll() is not None:
        operator.start()  # for the tests that follow

    counted = Counter(violations)
    lines = [f"{n} × {v}" if n > 1 else v for v, n in counted.items()]
    kinds = Counter(v.split(":", 1)[0] for v in violations)
    gone_in_logs = {name: len(GONE.findall(process.log()[logs_from[name]:]))
                    for name, process in (("operator", operator), ("authenticator", authenticator))}
    summary = [
        f"seed {seed}: {done} operations ({down} more not answered during outages) in {operations_seconds:.0f}s, "
        f"settled in {settle_seconds:.0f}s",
        "faults: " + ", ".join(f"{f.kind} ({f.seconds:.0f}s{', FAILED' if f.error else ''})" for f in faults.log),
        f"410 Gone seen: {recorder.gone} by the test's watches, {gone_in_logs['operator']} in the operator's log, "
        f"{gone_in_logs['authenticator']} in the authenticator's",
        f"token changes not judged (the test's watch missed versions): {unjudged}",
        f"violations: {len(violations)}" + (f" ({', '.join(f'{k} {n}' for k, n in kinds.most_common())})"
                                            if violations else ""),
        "operations: " + ", ".join(f"{k} {n}" for k, n in sorted(operations.history.counts.items())),
    ]
    print("\n".join(summary))
    request.config.stash.setdefault(FAULT_REPORT, []).extend(summary + lines[:50])
    assert len(faults.log) >= 5, f"seed {seed}: only {len(faults.log)} faults ran"
    assert not violations, (f"seed {seed}: {len(violations)} invariant violations ({replay}):\n"
                            + "\n".join(lines))
