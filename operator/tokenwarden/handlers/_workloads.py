"""Workload identities: a ServiceAccount that lists Kubernetes ServiceAccounts has in its status
how many are bound (status.workloadIdentities), the WorkloadIdentitiesBound condition naming
any that is missing or listed by another account too, and effectiveRoles: what its bindings
grant, which the authenticator gives its workloads, as a token's effectiveRoles.

The account's own handler (handlers._accounts) writes them on every change of its spec; the
triggers here bring them up to date when something else changes: a RoleBinding of the account,
a Kubernetes ServiceAccount created or deleted, another account listing the same one.
Kubernetes ServiceAccounts are read by name, and followed by their metadata alone: a cluster
with thousands that no account lists costs the operator no memory for them.
"""
from __future__ import annotations

from collections.abc import Iterable

import kopf

from tokenwarden import clock, policies
from tokenwarden.conditions import set_condition
from tokenwarden.kube import objects
from tokenwarden.kube._resources import GROUP, ROLE_BINDINGS, SERVICE_ACCOUNTS, VERSION
from tokenwarden.kube._service_accounts import existing_service_accounts


class WorkloadListings:
    """(namespace, Kubernetes ServiceAccount) → the tokenwarden accounts that list it."""

    def __init__(self) -> None:
        self.accounts: dict[tuple[str, str], set[str]] = {}
        self.workloads: dict[tuple[str, str], tuple[str, ...]] = {}  # (namespace, account) → what it lists

    def update(self, namespace: str, account: str, workloads: Iterable[str]) -> set[str]:
        """Record what ``account`` lists now; the other accounts whose workloads it shared
        before or shares now (their status may change with it)."""
        new = tuple(dict.fromkeys(workloads))
        old = self.workloads.pop((namespace, account), ())
        if new:
            self.workloads[(namespace, account)] = new
        touched: set[str] = set()
        for name in set(old) | set(new):
            listing = self.accounts.setdefault((namespace, name), set())
            listing.discard(account)
            touched |= listing
            if name in new:
                listing.add(account)
            elif not listing:
                del self.accounts[(namespace, name)]
        return touched if set(old) != set(new) else set()

    def others(self, namespace: str, account: str, names: Iterable[str]) -> dict[str, set[str]]:
        return {name: self.accounts.get((namespace, name), set()) - {account} for name in names}

    def listing(self, namespace: str, name: str) -> set[str]:
        return set(self.accounts.get((namespace, name), ()))


def listed_workloads(spec) -> list[str]:
    return [w.get("serviceAccountName") for w in spec.get("workloadIdentities") or [] if w.get("serviceAccountName")]


def workload_status(memo, namespace: str, name: str, spec, conditions: list[dict] | None,
                    generation: int | None) -> dict:
    """The account's status fields for its workload identities, to merge into a status patch
    (None removes a field: an account that lists none has none of them)."""
    listed = listed_workloads(spec)
    if not listed:
        kept = [c for c in conditions or [] if c.get("type") != policies.WORKLOADS_CONDITION]
        return {"workloadIdentities": None, "effectiveRoles": None, "conditions": kept}
    binding = policies.workload_binding(namespace, listed, existing_service_accounts(memo.core, namespace, listed),
                                        memo.workload_listings.others(namespace, name, listed))
    return {
        "workloadIdentities": binding.bound,
        "effectiveRoles": policies.granted_roles(memo.indexes.bindings.get((namespace, name))),
        "conditions": set_condition(conditions, policies.WORKLOADS_CONDITION, binding.ok, binding.reason,
                                    binding.message, generation=generation, now=clock.now()),
    }


def refresh_account(namespace: str, name: str, memo, logger) -> None:
    """Bring the account's workload status up to date (run by the work queue until it holds)."""
    body = objects.get_object(memo.custom, SERVICE_ACCOUNTS, namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return
    status = body.get("status") or {}
    wanted = workload_status(memo, namespace, name, body.get("spec") or {}, status.get("conditions"),
                             body["metadata"].get("generation"))
    changed = {field: value for field, value in wanted.items() if status.get(field) != value}
    if changed:
        objects.patch_status(memo.custom, SERVICE_ACCOUNTS, namespace, name, changed,
                             resource_version=body["metadata"]["resourceVersion"])


def _refresh(memo, namespace: str, accounts: Iterable[str]) -> None:
    for account in accounts:
        memo.work.submit(("workloads", namespace, account), refresh_account, namespace, account, memo,
                         memo.work_logger)


@kopf.on.startup()
async def start_listings(memo, **_) -> None:
    memo.workload_listings = WorkloadListings()


@kopf.on.event(GROUP, VERSION, SERVICE_ACCOUNTS.plural, id="workload-listings")
async def account_listing(type, body, name, namespace, memo, **_):
    gone = type == "DELETED" or body.metadata.get("deletionTimestamp")
    touched = memo.workload_listings.update(namespace, name, () if gone else listed_workloads(body.spec))
    _refresh(memo, namespace, touched)


@kopf.on.event(GROUP, VERSION, ROLE_BINDINGS.plural, id="workload-roles")
async def binding_changed(type, spec, namespace, memo, **_):
    """A binding of an account with workload identities: its effectiveRoles follow."""
    account = (spec or {}).get("serviceAccountName")
    if type is not None and account and (namespace, account) in memo.workload_listings.workloads:
        _refresh(memo, namespace, [account])


def service_account_changed(type: str, namespace: str, name: str, memo) -> None:
    """A Kubernetes ServiceAccount created or deleted (handlers/_watches.py follows them, by
    metadata only): the accounts that list it are recounted."""
    if type in ("ADDED", "DELETED"):
        _refresh(memo, namespace, memo.workload_listings.listing(namespace, name))
