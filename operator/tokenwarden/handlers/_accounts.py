"""ServiceAccounts: readiness, token count, quota and workload identities (handlers._workloads).
What disabling or deleting one does to its tokens is decided when they are settled
(handlers._settle)."""
from __future__ import annotations

import kopf

from tokenwarden import reasons
from tokenwarden import clock, policies
from tokenwarden.conditions import condition, set_condition
from tokenwarden.handlers import _events as events
from tokenwarden.handlers._workloads import workload_status
from tokenwarden.kube._resources import GROUP, SERVICE_ACCOUNTS, VERSION


@kopf.on.create(GROUP, VERSION, SERVICE_ACCOUNTS.plural, id="account")
@kopf.on.update(GROUP, VERSION, SERVICE_ACCOUNTS.plural, field="spec", id="account-update")
@kopf.on.resume(GROUP, VERSION, SERVICE_ACCOUNTS.plural, id="account-resume")
def reconcile_account(body, name, namespace, spec, patch, memo, **_):
    generation = body.metadata.get("generation")
    tokens = memo.indexes.tokens.get((namespace, name))
    quota = account_quota(memo, namespace, name, body.metadata.get("creationTimestamp"))
    if quota:
        ready = (False, quota.reason, f"{quota.message}; its tokens are not minted until it is within the quota")
        if (condition(body.status.get("conditions"), "Ready") or {}).get("reason") != quota.reason:
            events.warn(body, reason=quota.reason, message=quota.message)
    elif spec.get("disabled"):
        ready = (True, reasons.ACCOUNT_IS_DISABLED, "the account is disabled: its tokens fail verification")
    else:
        ready = (True, reasons.ACCOUNT_READY, f"the account has {len(tokens)} token(s)")
    patch.status["tokenCount"] = len(tokens)
    conditions = set_condition(body.status.get("conditions"), "Ready", ready[0], ready[1], ready[2],
                               generation=generation, now=clock.now())
    patch.status.update(workload_status(memo, namespace, name, spec, conditions, generation))


def account_quota(memo, namespace: str, name: str, created: str | None) -> policies.Problem | None:
    """The account quota as the operator applies it: the first maxAccountsPerNamespace
    accounts created in a namespace are within it, whatever got past admission."""
    return policies.account_over_quota(memo.indexes.accounts.get(namespace), name, created,
                                       memo.settings.quotas.max_accounts_per_namespace)
