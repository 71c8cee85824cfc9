"""Quotas from the seed products: accounts per namespace, tokens per account.

Only what can still verify holds a place: a Failed, Expired or Revoked token never
will, so it does not count. A token admitted and waiting on its account, binding or
source keeps its place (it mints the moment they appear). Tokens not looked at yet,
and tokens waiting for room, queue in creation order: the first in the queue gets
the first place freed, so two tokens never take the same one. Accounts queue the same
way: the first ``maxAccountsPerNamespace`` created are within the quota.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from tokenwarden import reasons
from tokenwarden.policies._roles import Problem

NEVER_VERIFY = ("Failed", "Expired", "Revoked")
# Ready reasons of a token waiting for room: its account's, or its namespace's for accounts.
TOKEN_QUOTA, ACCOUNT_QUOTA = reasons.QUOTA_EXCEEDED, reasons.ACCOUNT_QUOTA_EXCEEDED


class Queued(Protocol):
    """An account or token as the operator's indexes hold it."""
    name: str
    created: str  # metadata.creationTimestamp (RFC 3339, so it sorts as text)


class QuotaToken(Queued, Protocol):
    phase: str | None
    ready_reason: str | None


def holds_place(phase: str | None, reason: str | None) -> bool:
    """Active (verifying, or disabled with its account) or waiting on something other than room."""
    return phase not in NEVER_VERIFY and not waits_for_room(phase, reason)


def waits_for_room(phase: str | None, reason: str | None) -> bool:
    """Not looked at yet, or Pending for a quota: in the queue."""
    return phase is None or (phase == "Pending" and reason in (TOKEN_QUOTA, ACCOUNT_QUOTA))


def ahead(entries: Iterable[Queued], name: str, created: str | None) -> list:
    """The entries created before (name, created); ``created`` None is an object not yet
    stored (an admission request): everything else is ahead of it."""
    return [e for e in entries if e.name != name
            and (created is None or (e.created or "", e.name) < (created, name))]


def account_quota_problem(existing: int, limit: int) -> Problem | None:
    """``existing`` counts the namespace's ServiceAccounts ahead of this one (all others, at admission)."""
    if existing < limit:
        return None
    return Problem(reasons.QUOTA_EXCEEDED,
                   f"quota exceeded: at most {limit} ServiceAccounts per namespace "
                   f"(quotas.maxAccountsPerNamespace); delete one or raise the limit")


def account_over_quota(accounts: Iterable[Queued], name: str, created: str | None, limit: int) -> Problem | None:
    """Whether the account ``name`` is beyond the first ``limit`` of its namespace."""
    return account_quota_problem(len(ahead(accounts, name, created)), limit)


def waiting_for_account_quota(account: str, problem: Problem) -> Problem:
    """A token of an account beyond the account quota: it waits, not minted."""
    return Problem(ACCOUNT_QUOTA,
                   f"ServiceAccount {account!r} is beyond the namespace's account quota, so its tokens are "
                   f"not minted: {problem.message}; the token is minted as soon as the account is within it",
                   waiting=True)


def token_quota_problem(tokens: Iterable[QuotaToken], name: str, created: str | None, limit: int,
                        account: str) -> Problem | None:
    """Whether the token ``name`` of ``account`` may mint: the other tokens that hold a
    place, plus those queued before it, leave room under ``limit``."""
    others = [t for t in tokens if t.name != name]
    held = sum(1 for t in others if holds_place(t.phase, t.ready_reason))
    queued = sum(1 for t in ahead(others, name, created) if waits_for_room(t.phase, t.ready_reason))
    if held + queued < limit:
        return None
    before = f" ({queued} of them waiting for room before this one)" if queued else ""
    return Problem(TOKEN_QUOTA,
                   f"quota exceeded: ServiceAccount {account!r} already has {held + queued} token(s) that "
                   f"count{before}, at most {limit} allowed (quotas.maxTokensPerAccount); Failed, Expired and "
                   "Revoked tokens do not count: delete one or raise the limit",
                   waiting=True)
