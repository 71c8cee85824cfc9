"""RoleBindings: readiness. The account's tokens' effectiveRoles follow the bindings when the
tokens are settled (handlers._settle)."""
from __future__ import annotations

import kopf

from tokenwarden import reasons
from tokenwarden import clock, policies
from tokenwarden.conditions import set_condition
from tokenwarden.handlers import _events as events
from tokenwarden.kube._resources import GROUP, ROLE_BINDINGS, VERSION

WAIT_DELAY = 5.0


@kopf.on.create(GROUP, VERSION, ROLE_BINDINGS.plural, id="binding")
@kopf.on.update(GROUP, VERSION, ROLE_BINDINGS.plural, field="spec", id="binding-update")
@kopf.on.resume(GROUP, VERSION, ROLE_BINDINGS.plural, id="binding-resume")
def reconcile_binding(body, namespace, spec, patch, memo, **_):
    generation = body.metadata.get("generation")
    account = spec.get("serviceAccountName")
    missing = policies.unknown_roles(spec.get("roles") or [], memo.settings.roles)

    def ready(ok: bool, reason: str, message: str) -> None:
        patch.status["conditions"] = set_condition(body.status.get("conditions"), "Ready", ok, reason,
                                                   message, generation=generation, now=clock.now())

    if missing:
        message = (f"role {', '.join(missing)} is not in the role catalog "
                   f"(known: {', '.join(sorted(memo.settings.roles))}); the binding grants nothing until fixed")
        ready(False, reasons.UNKNOWN_ROLE, message)
        events.warn(body, reason=reasons.UNKNOWN_ROLE, message=message)
        return
    if (namespace, account) not in memo.indexes.accounts:
        message = f"ServiceAccount {account!r} does not exist in this namespace; create it"
        ready(False, reasons.ACCOUNT_NOT_FOUND, message)
        raise kopf.TemporaryError(message, delay=WAIT_DELAY)
    scope = f" in project {spec['project']!r}" if spec.get("project") else ""
    ready(True, reasons.BOUND, f"{', '.join(spec['roles'])} granted to {account!r}{scope}")
