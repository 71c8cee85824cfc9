"""Quotas from the seed products: accounts per namespace, tokens per account."""
from __future__ import annotations

from tokenwarden.policies._roles import Problem


def account_quota_problem(existing: int, limit: int) -> Problem | None:
    """``existing`` counts the namespace's other ServiceAccounts."""
    if existing < limit:
        return None
    return Problem("QuotaExceeded",
                   f"quota exceeded: at most {limit} ServiceAccounts per namespace "
                   f"(quotas.maxAccountsPerNamespace); delete one or raise the limit")


def token_quota_problem(existing: int, limit: int, account: str) -> Problem | None:
    """``existing`` counts the account's other tokens."""
    if existing < limit:
        return None
    return Problem("QuotaExceeded",
                   f"quota exceeded: ServiceAccount {account!r} already has {existing} tokens, "
                   f"at most {limit} allowed (quotas.maxTokensPerAccount); delete one or raise the limit")
