"""In-memory indexes of accounts, bindings and tokens, so handlers ask no API calls.

kopf keeps them current from its watches and fills them before any handler runs.
"""
from __future__ import annotations

from dataclasses import dataclass

import kopf

from tokenwarden.conditions import condition
from tokenwarden.kube._resources import (
    GROUP,
    INGESTION_KEYS,
    ROLE_BINDINGS,
    SERVICE_ACCOUNTS,
    SERVICE_TOKENS,
    VERSION,
)
from tokenwarden.policies import Binding


@dataclass(frozen=True)
class AccountEntry:
    name: str
    disabled: bool


@dataclass(frozen=True)
class TokenEntry:
    name: str
    phase: str | None
    roles: tuple[str, ...]
    effective_roles: tuple[str, ...] | None
    ready_reason: str | None


@kopf.index(GROUP, VERSION, SERVICE_ACCOUNTS.plural)
def accounts_idx(namespace: str, name: str, spec: kopf.Spec, body: kopf.Body, **_):
    """(namespace, name) → AccountEntry; namespace → AccountEntry (for quotas)."""
    entry = AccountEntry(name, bool(spec.get("disabled", False)))
    if body.metadata.get("deletionTimestamp"):
        return None
    return {(namespace, name): entry, namespace: entry}


@kopf.index(GROUP, VERSION, ROLE_BINDINGS.plural)
def bindings_idx(namespace: str, spec: kopf.Spec, memo: kopf.Memo, **_):
    """(namespace, account) → Binding, for bindings whose roles are all in the catalog."""
    account = spec.get("serviceAccountName")
    roles = tuple(spec.get("roles") or ())
    if not account or not roles or any(r not in memo.settings.roles for r in roles):
        return None
    return {(namespace, account): Binding(roles=roles, project=spec.get("project") or None)}


@kopf.index(GROUP, VERSION, SERVICE_TOKENS.plural)
def tokens_idx(namespace: str, name: str, spec: kopf.Spec, status: kopf.Status, **_):
    """(namespace, account) → TokenEntry, for tokens that belong to an account."""
    account = spec.get("serviceAccountName")
    if not account:
        return None
    ready = condition(status.get("conditions"), "Ready") or {}
    effective = status.get("effectiveRoles")
    entry = TokenEntry(name, status.get("phase"), tuple(spec.get("roles") or ()),
                       tuple(effective) if effective is not None else None, ready.get("reason"))
    return {(namespace, account): entry}


@kopf.index(GROUP, VERSION, SERVICE_TOKENS.plural)
def hashes_idx(namespace: str, name: str, status: kopf.Status, **_):
    """tokenHash → (namespace, name): one key may belong to one token only."""
    token_hash = status.get("tokenHash")
    return {token_hash: (namespace, name)} if token_hash else None


@kopf.index(GROUP, VERSION, SERVICE_TOKENS.plural)
def imports_idx(namespace: str, name: str, spec: kopf.Spec, **_):
    """(namespace, source Secret) → token name, for imported keys."""
    ref = (spec.get("import") or {}).get("secretRef") or {}
    return {(namespace, ref["name"]): name} if ref.get("name") else None


@kopf.index(GROUP, VERSION, SERVICE_TOKENS.plural, id="owners_st")
@kopf.index(GROUP, VERSION, INGESTION_KEYS.plural, id="owners_ik")
def owners_idx(uid: str, **_):
    """uid → True for every token and key: a Secret whose owner is not here is an orphan."""
    return {uid: True}
