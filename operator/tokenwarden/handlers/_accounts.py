"""ServiceAccounts: readiness, token count, quota, and what disabling or deleting does to tokens."""
from __future__ import annotations

from datetime import datetime, timezone

import kopf

from tokenwarden import policies
from tokenwarden.conditions import condition, set_condition
from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.kube import objects
from tokenwarden.kube import secrets as kube_secrets
from tokenwarden.kube._resources import GROUP, SERVICE_ACCOUNTS, SERVICE_TOKENS, VERSION


def _now() -> datetime:
    return datetime.now(timezone.utc)


@kopf.on.create(GROUP, VERSION, SERVICE_ACCOUNTS.plural, id="account")
@kopf.on.update(GROUP, VERSION, SERVICE_ACCOUNTS.plural, field="spec", id="account-update")
@kopf.on.resume(GROUP, VERSION, SERVICE_ACCOUNTS.plural, id="account-resume")
def reconcile_account(body, name, namespace, spec, patch, memo, reason, **_):
    generation = body.metadata.get("generation")
    others = [a for a in memo.indexes.accounts.get(namespace) if a.name != name]
    quota = policies.account_quota_problem(len(others), memo.settings.quotas.max_accounts_per_namespace)
    tokens = memo.indexes.tokens.get((namespace, name))
    if quota and not body.status.get("conditions"):
        ready = (False, quota.reason, quota.message)
        kopf.warn(body, reason=quota.reason, message=quota.message)
    elif spec.get("disabled"):
        ready = (True, "Disabled", "the account is disabled: its tokens fail verification")
    else:
        ready = (True, "Ready", f"the account has {len(tokens)} token(s)")
    patch.status["tokenCount"] = len(tokens)
    patch.status["conditions"] = set_condition(body.status.get("conditions"), "Ready", ready[0],
                                               ready[1], ready[2], generation=generation, now=_now())
    # On a spec change the index's view of the tokens' conditions may lag: write them all.
    _mark_tokens(memo, namespace, name, tokens, disabled=bool(spec.get("disabled")), force=reason == "update")


def _mark_tokens(memo, namespace: str, account: str, tokens, *, disabled: bool, force: bool = False) -> None:
    """Set the Ready condition of the account's Active tokens to match ``disabled``.

    With ``force`` (the account's spec changed) each token is read from the API server,
    since the index may not have seen a token that became Active a moment ago.
    """
    for entry in tokens:
        if force:
            with kube_errors_to_kopf():
                token = objects.get_object(memo.custom, SERVICE_TOKENS, namespace, entry.name)
            status = (token or {}).get("status") or {}
            phase = status.get("phase")
            reason = (condition(status.get("conditions"), "Ready") or {}).get("reason")
        else:
            phase, reason = entry.phase, entry.ready_reason
        if phase != "Active":
            continue
        if disabled and reason != "AccountDisabled":
            ready = (False, "AccountDisabled",
                     f"ServiceAccount {account!r} is disabled: the token fails verification until "
                     "the account is enabled")
        elif not disabled and reason == "AccountDisabled":
            ready = (True, "Minted", "the account is enabled again")
        else:
            continue
        conditions = set_condition(None, "Ready", *ready, generation=None, now=_now())
        with kube_errors_to_kopf():
            objects.patch_status(memo.custom, SERVICE_TOKENS, namespace, entry.name, {"conditions": conditions})


@kopf.on.event(GROUP, VERSION, SERVICE_ACCOUNTS.plural,
               when=lambda type, **_: type == "DELETED")
def revoke_account_tokens(name, namespace, memo, logger, **_):
    """Deleting an account revokes its tokens: Secrets deleted, phase Revoked."""
    for entry in memo.indexes.tokens.get((namespace, name)):
        if entry.phase in ("Revoked", "Expired"):
            continue
        token = objects.get_object(memo.custom, SERVICE_TOKENS, namespace, entry.name)
        if token is None or token["metadata"].get("deletionTimestamp"):
            continue
        status = token.get("status") or {}
        secret_name = status.get("secretName") or token["spec"].get("secretName") or entry.name
        owner = kube_secrets.Owner(SERVICE_TOKENS.kind, entry.name, token["metadata"]["uid"])
        kube_secrets.delete_token_secret(memo.core, namespace, secret_name, owner)
        message = f"ServiceAccount {name!r} was deleted: the token is revoked"
        conditions = set_condition(status.get("conditions"), "Ready", False, "AccountDeleted", message,
                                   generation=token["metadata"].get("generation"), now=_now())
        objects.patch_status(memo.custom, SERVICE_TOKENS, namespace, entry.name,
                             {"phase": "Revoked", "conditions": conditions})
        kopf.warn(token, reason="AccountDeleted", message=message)
        logger.info(f"revoked ServiceToken {namespace}/{entry.name}: its account was deleted")
