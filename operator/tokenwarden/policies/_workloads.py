"""Workload identities of a ServiceAccount: which are bound, and what the condition says."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tokenwarden import reasons

WORKLOADS_CONDITION = "WorkloadIdentitiesBound"


@dataclass(frozen=True)
class WorkloadBinding:
    bound: int                    # listed, existing, and listed by no other account
    ok: bool
    reason: str
    message: str


def workload_binding(namespace: str, listed: Iterable[str], existing: set[str],
                     also_listed_by: Mapping[str, Iterable[str]]) -> WorkloadBinding:
    """Which of the Kubernetes ServiceAccounts an account lists can authenticate as it: those
    that exist in ``namespace`` and that no other account (``also_listed_by``: name → the
    other accounts) lists too (the authenticator grants neither of two accounts)."""
    listed = list(dict.fromkeys(listed))
    missing = [name for name in listed if name not in existing]
    shared = {name: sorted(also_listed_by[name]) for name in listed if also_listed_by.get(name)}
    bound = sum(1 for name in listed if name in existing and name not in shared)
    problems = []
    if missing:
        problems.append(f"Kubernetes ServiceAccount {', '.join(missing)} does not exist in namespace {namespace}: "
                        f"create it (kubectl create serviceaccount {missing[0]} -n {namespace}) or remove it "
                        "from spec.workloadIdentities")
    for name, others in shared.items():
        problems.append(f"Kubernetes ServiceAccount {name} is also listed by ServiceAccount {', '.join(others)}: "
                        "its tokens are refused until only one account lists it")
    if problems:
        reason = reasons.SERVICE_ACCOUNT_NOT_FOUND if missing else reasons.LISTED_BY_ANOTHER_ACCOUNT
        return WorkloadBinding(bound, False, reason, "; ".join(problems))
    return WorkloadBinding(bound, True, reasons.BOUND, f"{bound} workload identit{'y' if bound == 1 else 'ies'} "
                                                 f"bound: {', '.join(listed)}")
