"""Quotas: a token or account waiting for room is looked at again as soon as room appears.

Level-triggered: any event of a token whose account has tokens waiting for room, and the
deletion of an account, make the operator ask the indexes again which waiting objects
now fit, and only those are read and reconciled (queued in creation order, so the first
waiting gets the first place). What no event reaches (a deletion seen only in a new
listing) is caught by the unsettled sweep for tokens (handlers._unsettled: every Pending
token after a minute) and by a timer for accounts over the quota.
"""
from __future__ import annotations

import asyncio

import kopf

from tokenwarden import reasons
from tokenwarden import policies
from tokenwarden.conditions import condition
from tokenwarden.handlers._accounts import account_quota, reconcile_account
from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.handlers._mint import reconcile_now, room_problem
from tokenwarden.handlers._token_kinds import SERVICE_TOKEN
from tokenwarden.kube import objects
from tokenwarden.kube._resources import GROUP, SERVICE_ACCOUNTS, SERVICE_TOKENS, VERSION

ACCOUNT_RECHECK = 60.0  # seconds between looks at an account over the quota


def _waiting(memo, namespace: str, account: str) -> list:
    """The account's tokens Pending for a quota, first created first."""
    return sorted((t for t in memo.indexes.tokens.get((namespace, account))
                   if t.phase == "Pending" and policies.waits_for_room(t.phase, t.ready_reason)),
                  key=lambda t: (t.created, t.name))


def _has_waiting(body, namespace, memo, **_) -> bool:
    account = (body.get("spec") or {}).get("serviceAccountName")
    return bool(account) and bool(_waiting(memo, namespace, account))


@kopf.on.event(GROUP, VERSION, SERVICE_TOKENS.plural, id="quota-room", when=_has_waiting)
async def token_room(body, namespace, memo, logger, **_):
    """A token of an account with tokens waiting changed or went (the indexes have seen it by
    now: kopf's stream feeds them before any handler runs, handlers/_listings.py)."""
    await asyncio.to_thread(mint_waiting, memo, namespace, body["spec"]["serviceAccountName"], logger)


def mint_waiting(memo, namespace: str, account: str, logger) -> None:
    for entry in _waiting(memo, namespace, account):
        if room_problem(memo, namespace, account, entry.name, entry.created or None):
            return  # the rest are queued behind this one
        with kube_errors_to_kopf():
            token = objects.get_object(memo.custom, SERVICE_TOKENS, namespace, entry.name)
        if token is None or token["metadata"].get("deletionTimestamp") or \
                (token.get("status") or {}).get("phase") != "Pending":
            continue
        logger.info(f"ServiceToken {namespace}/{entry.name} waited for room under a quota: looking at it again")
        try:
            reconcile_now(SERVICE_TOKEN, token, memo, logger)
        except (kopf.TemporaryError, kopf.PermanentError) as exc:
            logger.info(f"ServiceToken {namespace}/{entry.name} still waits: {exc}")


@kopf.on.event(GROUP, VERSION, SERVICE_ACCOUNTS.plural, id="quota-account-gone",
               when=lambda type, **_: type == "DELETED")
async def account_room(body, namespace, memo, logger, **_):
    """An account went: the accounts queued behind it that are now within the quota are marked
    so, and their waiting tokens minted."""
    gone = body.metadata
    for entry in memo.indexes.accounts.get(namespace):
        before = policies.account_over_quota([*memo.indexes.accounts.get(namespace), _Gone(gone)], entry.name,
                                             entry.created or None, memo.settings.quotas.max_accounts_per_namespace)
        if before and not account_quota(memo, namespace, entry.name, entry.created or None):
            await asyncio.to_thread(_within_quota_now, memo, namespace, entry.name, logger)


class _Gone:
    """The deleted account, as an index entry, to tell which accounts it held back."""

    def __init__(self, meta) -> None:
        self.name, self.created = meta["name"], meta.get("creationTimestamp") or ""


def _within_quota_now(memo, namespace: str, name: str, logger) -> None:
    with kube_errors_to_kopf():
        account = objects.get_object(memo.custom, SERVICE_ACCOUNTS, namespace, name)
    if account is None:
        return
    patch = kopf.Patch()
    body = kopf.Body(account)
    reconcile_account(body=body, name=name, namespace=namespace, spec=body.spec, patch=patch, memo=memo,
                      reason="quota")
    with kube_errors_to_kopf():
        objects.patch_status(memo.custom, SERVICE_ACCOUNTS, namespace, name, dict(patch["status"]))
    logger.info(f"ServiceAccount {namespace}/{name} is within the account quota now")
    mint_waiting(memo, namespace, name, logger)


def _over_quota(status, **_) -> bool:
    return (condition(status.get("conditions"), "Ready") or {}).get("reason") == reasons.QUOTA_EXCEEDED


@kopf.timer(GROUP, VERSION, SERVICE_ACCOUNTS.plural, id="quota-account-recheck", interval=ACCOUNT_RECHECK,
            initial_delay=ACCOUNT_RECHECK, when=_over_quota)
async def account_recheck(body, name, namespace, memo, logger, **_):
    """An account over the quota whose room came with no event (a deletion seen only in a listing)."""
    if not account_quota(memo, namespace, name, body.metadata.get("creationTimestamp")):
        await asyncio.to_thread(_within_quota_now, memo, namespace, name, logger)
