"""Randomised faults: a few hundred random operations on accounts, bindings, tokens, keys and
imports, while the operator is killed (-9), kube-apiserver and etcd restart and watches
expire (etcd compacted: real 410s); then, once the system has settled, the invariants:

- every Active token's status.tokenHash matches the token in its Secret (or token.previous
  during an overlap), mid-run whenever a client could look, and at the end;
- nothing deleted or revoked verifies, every live Active token does, with no role that no
  live binding grants;
- nothing revoked or expired is revived; no token is minted twice;
- no Secret is left with an owner reference to a token that does not exist.

``make test`` runs a fixed list of seeds (FIXED_SEEDS: every seed that ever found a bug, and a
few more), so a run draws nothing at random. Exploring new seeds is ``make fuzz-faults`` (or
``--fault-seed random --fault-explore 60m --timeout 0``): seed after seed until the time is up,
a replay line for each seed that breaks an invariant. A seed that finds a bug joins
FIXED_SEEDS, and the bug gets a deterministic test of its interleaving (a seed replays the
same operations and faults, not the operator's timing).

Replay one seed with ``pytest tests/integration/test_faults.py --fault-seed SEED --fault-ops N``.
Longer runs: ``--fault-ops 2000 --timeout 0``.
"""
from __future__ import annotations

import random
import re
import time
import uuid
from collections import Counter

import pytest
import yaml
from kubernetes.client import CoreV1Api, CustomObjectsApi

from tokenwarden import kube
from tokenwarden.durations import parse_duration

from ..conftest import TEST_SETTINGS
from ..support_tiers import summarise
from .faults._invariants import (
    history_violations,
    mint_events,
    orphan_violations,
    read_world,
    sandwich_check,
    state_violations,
    verification_violations,
)
from .faults._ops import FAULT_KINDS, Down, Faults, Operations
from .faults._record import Recorder

SETTLE_TIMEOUT = 150.0  # seconds, in each stage: a bound on waiting, not a speed requirement
GC_WAIT = 30.0  # seconds the garbage collector is given, with the operator down, before its leftovers are noted
MAX_TOKENS = yaml.safe_load(TEST_SETTINGS)["quotas"]["maxTokensPerAccount"]
GONE = re.compile(r"\b410\b|too old resource version", re.IGNORECASE)

# Seeds that found a bug (each with a deterministic test of its own), then others: every kind
# of fault lands in every seed's run (Faults.plan), so fewer operations per seed still cover them.
FIXED_SEEDS = (1679101937, 3161353991, 1181713340, 20261207, 424242)
FIXED_OPS = 30  # per fixed seed: its four faults' recoveries, not its operations, set its time (40-50 s)
EXPLORE_OPS = 200

pytestmark = pytest.mark.faults


def pytest_generate_tests(metafunc):
    if "fault_seed" in metafunc.fixturenames:
        given = metafunc.config.getoption("--fault-seed")
        seeds = list(FIXED_SEEDS) if given is None else [given if given == "random" else int(given)]
        metafunc.parametrize("fault_seed", seeds, ids=str)


def _settle(api_client, namespace, recorder, operations, authenticator, *,
            operator_down: bool = False) -> tuple[list[str], Counter, float, list[str]]:
    """Check the state until it holds or the timeout passes: the last check's violations, how
    many token values it asked the authenticator about, how long it took, and notes. With the
    operator down, only what needs no operator: that nothing deleted or revoked verifies and
    every valid token does (Secrets left to the garbage collector are noted, not judged)."""
    started = time.monotonic()
    asked: Counter = Counter()
    history = operations.history
    notes: list[str] = []
    while True:
        try:
            world = read_world(api_client, namespace)
            if operator_down:
                current, notes = [], orphan_violations(world)
            else:
                current = state_violations(world, history.revoked_with_account, history.invalid_edits_admitted,
                                           MAX_TOKENS)
            refused, asked = verification_violations(world, recorder, history.import_values,
                                                     history.revoked_with_account, authenticator,
                                                     roles=not operator_down)
            current += refused
        except Exception as exc:  # the API server or the authenticator not answering
            current = [f"unreadable: {type(exc).__name__}: {exc}"[:300]]
        if operator_down:
            current = [f"{v} (operator down)" for v in current]
        kinds = Counter(v.split(":", 1)[0] for v in current)
        print(f"settling{' with the operator down' if operator_down else ''} "
              f"({time.monotonic() - started:.0f}s): {sum(kinds.values())} violations {dict(kinds)}")
        elapsed = time.monotonic() - started
        if (not current and not (notes and elapsed < GC_WAIT)) or elapsed > SETTLE_TIMEOUT:
            return current, asked, elapsed, notes
        time.sleep(2)


def test_random_operations_with_faults_break_no_invariant(request, cluster, operator, authenticator, api_client,
                                                         core, custom, namespace, fault_seed):
    if cluster.plane is None:
        pytest.skip("faults are staged on the local control plane")
    test = request.node.nodeid.split("[")[0]
    if fault_seed != "random":
        total = request.config.getoption("--fault-ops") or FIXED_OPS
        failed = _one_seed(request, fault_seed, total, test, cluster, operator, authenticator, api_client, core,
                           custom, namespace)
        assert not failed, failed
        return
    # Exploring: new seeds until the time asked for is up (one seed when none is asked).
    total = request.config.getoption("--fault-ops") or EXPLORE_OPS
    explore = request.config.getoption("--fault-explore")
    deadline = time.monotonic() + (parse_duration(explore).total_seconds() if explore else 0)
    failures, runs = [], 0
    while True:
        seed = random.SystemRandom().randrange(2**32)
        space = namespace if not runs else _namespace(core, f"faults-{uuid.uuid4().hex[:6]}")
        failed = _one_seed(request, seed, total, test, cluster, operator, authenticator, api_client, core, custom,
                           space)
        runs += 1
        if failed:
            failures.append(failed)
            print(f"\nFAILED {failed.splitlines()[0]}", flush=True)
        if space != namespace:
            core.delete_namespace(space)
        if time.monotonic() >= deadline:
            break
    print(f"\nexplored {runs} seeds of {total} operations: {len(failures)} broke an invariant")
    assert not failures, "\n\n".join(failures)


def _namespace(core, name: str) -> str:
    from kubernetes.client import V1Namespace, V1ObjectMeta

    core.create_namespace(V1Namespace(metadata=V1ObjectMeta(name=name)))
    return name


def _one_seed(request, seed, total, test, cluster, operator, authenticator, api_client, core, custom,
              namespace) -> str:
    """Run one seed; what it broke (with its replay line first), or an empty string."""
    replay = f"replay: pytest {test} --fault-seed {seed} --fault-ops {total}"
    print(f"\nrandomised faults: seed {seed}, {total} operations ({replay})", flush=True)
    logs_from = {"operator": len(operator.log()), "authenticator": len(authenticator.log())}

    recorder = Recorder(cluster.kubeconfig, namespace)
    recorder.start()
    operations = Operations(random.Random(seed), custom, core, namespace, seed)
    side = kube.load_api_client(str(cluster.kubeconfig))  # the fault thread's own connections
    burst = Operations(random.Random(f"{seed}/burst"), CustomObjectsApi(side), CoreV1Api(side), namespace, seed,
                       shared=operations)
    faults = Faults(random.Random(f"{seed}/faults"), cluster.plane, operator, authenticator, burst)
    plan = faults.plan(total, max(len(FAULT_KINDS), total // 40))  # every kind once; more in longer runs
    planned = len(plan)
    pace = random.Random(f"{seed}/pace")
    mid_run: list[str] = []
    started = time.monotonic()
    done = unanswered = checked = 0
    try:
        while done < total:
            while plan and plan[0][0] <= done:
                faults.inject(plan.pop(0)[1])
            try:
                operations.step()
            except Down:
                unanswered += 1
                time.sleep(0.5)
                continue
            done += 1
            if pace.random() < 0.3:
                kind = pace.choice(["ServiceToken", "IngestionAPIKey"])
                name = pace.choice(sorted(operations.live[kind])
                                   or (operations.tokens if kind == "ServiceToken" else operations.keys))
                try:
                    judged, found = sandwich_check(api_client, namespace, kind, name)
                except Exception:  # gone, or the API server is down: nothing to judge
                    judged, found = False, None
                checked += judged
                if found:
                    mid_run.append(found)
            time.sleep(pace.uniform(0, 0.3))
    finally:
        faults.finish()
        operations_seconds = time.monotonic() - started
    # The last fault: the operator killed and left down while tokens, keys and accounts are
    # deleted. Revocation and garbage collection must need nobody.
    operator.stop(kill=True)
    operations.burst(pace.randint(4, 8), deletions_only=True)
    down, _, down_seconds, notes = _settle(api_client, namespace, recorder, operations, authenticator,
                                           operator_down=True)
    operator.start()
    current, asked, settle_seconds, _ = _settle(api_client, namespace, recorder, operations, authenticator)
    recorder.stop()
    history, unjudged = history_violations(recorder, mint_events(core, namespace))

    violations = mid_run + history + down + current
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
        f"seed {seed}: {done} operations ({unanswered} more not answered during outages) in "
        f"{operations_seconds:.0f}s; settled in {down_seconds:.0f}s with the operator down, then in "
        f"{settle_seconds:.0f}s with it",
        "faults: " + ", ".join(f"{f.kind} ({f.seconds:.0f}s{', FAILED' if f.error else ''})" for f in faults.log)
        + ", kill-operator (left down to the end)",
        f"410 Gone seen: {recorder.gone} by the test's watches, {gone_in_logs['operator']} in the operator's log, "
        f"{gone_in_logs['authenticator']} in the authenticator's",
        f"checked: {checked} tokens against their Secrets mid-run; token values asked at the end: "
        + ", ".join(f"{n} {k}" for k, n in asked.items())
        + f"; {len(operations.history.revoked_with_account)} tokens revoked with their account; "
        f"{unjudged} token changes not judged (the test's watch missed versions)",
        f"violations: {len(violations)}" + (f" ({', '.join(f'{k} {n}' for k, n in kinds.most_common())})"
                                            if violations else ""),
        "operations: " + ", ".join(f"{k} {n}" for k, n in sorted(operations.history.counts.items())),
        *(f"note, with the operator down, after settling: {n}" for n in notes),
    ]
    print("\n".join(summary))
    summarise(request, "randomised faults", summary + lines[:50])
    if len(faults.log) < planned:
        return f"{replay}\nseed {seed}: only {len(faults.log)} of {planned} faults ran"
    if violations:
        return f"{replay}\nseed {seed}: {len(violations)} invariant violations:\n" + "\n".join(lines)
    return ""
