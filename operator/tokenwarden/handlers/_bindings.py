"""RoleBindings: readiness, and keeping the account's tokens' effectiveRoles current."""
from __future__ import annotations

from datetime import datetime, timezone

import kopf

from tokenwarden import policies
from tokenwarden.conditions import set_condition
from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.kube import objects
from tokenwarden.kube._resources import GROUP, ROLE_BINDINGS, SERVICE_TOKENS, VERSION

WAIT_DELAY = 5.0


def _now() -> datetime:
    return datetime.now(timezone.utc)


@kopf.on.create(GROUP, VERSION, ROLE_BINDINGS.plural, id="binding")
@kopf.on.update(GROUP, VERSION, ROLE_BINDINGS.plural, field="spec", id="binding-update")
@kopf.on.resume(GROUP, VERSION, ROLE_BINDINGS.plural, id="binding-resume")
def reconcile_binding(body, namespace, spec, patch, memo, **_):
    generation = body.metadata.get("generation")
    account = spec.get("serviceAccountName")
    missing = policies.unknown_roles(spec.get("roles") or [], memo.settings.roles)

    def ready(ok: bool, reason: str, message: str) -> None:
        patch.status["conditions"] = set_condition(body.status.get("conditions"), "Ready", ok, reason,
                                                   message, generation=generation, now=_now())

    if missing:
        message = (f"role {', '.join(missing)} is not in the role catalog "
                   f"(known: {', '.join(sorted(memo.settings.roles))}); the binding grants nothing until fixed")
        ready(False, "UnknownRole", message)
        kopf.warn(body, reason="UnknownRole", message=message)
        return
    if (namespace, account) not in memo.indexes.accounts:
        message = f"ServiceAccount {account!r} does not exist in this namespace; create it"
        ready(False, "AccountNotFound", message)
        raise kopf.TemporaryError(message, delay=WAIT_DELAY)
    scope = f" in project {spec['project']!r}" if spec.get("project") else ""
    ready(True, "Bound", f"{', '.join(spec['roles'])} granted to {account!r}{scope}")


@kopf.on.event(GROUP, VERSION, ROLE_BINDINGS.plural)
def refresh_token_roles(namespace, spec, memo, logger, **_):
    """After any change to a binding, bring the account's Active tokens' roles up to date."""
    account = (spec or {}).get("serviceAccountName")
    if not account:
        return
    bindings = memo.indexes.bindings.get((namespace, account))
    exists = (namespace, account) in memo.indexes.accounts
    for entry in memo.indexes.tokens.get((namespace, account)):
        if entry.phase != "Active":
            continue
        plan = policies.plan_roles(list(entry.roles) or None, memo.settings.roles, account=account,
                                   account_exists=exists, bindings=bindings)
        if isinstance(plan, policies.Problem):
            status = {"effectiveRoles": [], "conditions": set_condition(
                None, "Ready", False, plan.reason, plan.message, generation=None, now=_now())}
        elif tuple(plan.effective_roles) != entry.effective_roles or entry.ready_reason in (
                "RolesNotGranted", "NoRolesGranted"):
            status = {"effectiveRoles": plan.effective_roles, "conditions": set_condition(
                None, "Ready", True, "Minted", "roles updated from the account's bindings",
                generation=None, now=_now())}
        else:
            continue
        if entry.effective_roles == tuple(status["effectiveRoles"]) and entry.ready_reason == \
                status["conditions"][0]["reason"]:
            continue
        with kube_errors_to_kopf():
            objects.patch_status(memo.custom, SERVICE_TOKENS, namespace, entry.name, status)
        logger.info(f"ServiceToken {entry.name}: effectiveRoles now {status['effectiveRoles']}")
