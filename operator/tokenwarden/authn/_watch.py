"""What the authenticator keeps of tokens, keys and accounts: stores that reflectors fill."""
from __future__ import annotations

import sys
from collections.abc import Callable, Mapping

from tokenwarden import policies
from tokenwarden.authn._index import WORKLOAD, Account, Identity, TokenIndex
from tokenwarden.authn._metrics import TOKENS_BY_PHASE
from tokenwarden.kube._resources import INGESTION_KEYS, SERVICE_TOKENS

TokenKey = tuple[str, str, str]  # (kind, namespace, name)


def identity_from(kind: str, body: Mapping) -> tuple[Identity, list[tuple[str, object]], frozenset[str]] | None:
    """What the index keeps of a token: its identity, its hashes (current, and previous with
    the end of its overlap), and which of them are recorded as leaked. A leaked hash counts
    only as one of the object's own: whoever may annotate one token cannot refuse another."""
    status = body.get("status") or {}
    token_hash = status.get("tokenHash")
    if not token_hash:
        return None
    spec = body.get("spec") or {}
    metadata = body["metadata"]
    identity = Identity(
        kind=kind,
        namespace=_shared(metadata["namespace"]),
        name=metadata["name"],
        account=_shared(spec.get("serviceAccountName")) if kind == SERVICE_TOKENS.kind else None,
        roles=_shared(tuple(spec.get("roles") or ())) if kind == SERVICE_TOKENS.kind else (),
        phase=_shared(status.get("phase")),
        expires_at=policies.parse_time(status.get("expiresAt")),
        project=_shared(spec.get("project")) if kind == INGESTION_KEYS.kind else None,
        audiences=_shared(tuple(spec.get("audiences") or ())) if kind == SERVICE_TOKENS.kind else (),
        account_uid=_shared(status.get("accountUID")) if kind == SERVICE_TOKENS.kind else None,
        deleting=bool(metadata.get("deletionTimestamp")),
        token_id=status.get("tokenId"),
    )
    hashes: list[tuple[str, object]] = [(token_hash, None)]
    previous = status.get("previousTokenHash")
    until = policies.parse_time(status.get("previousValidUntil"))
    if previous and until:
        hashes.append((previous, until))
    leaked = frozenset()
    annotations = metadata.get("annotations")
    if annotations and policies.LEAKED_ANNOTATION in annotations:
        leaked = policies.leaked_hashes(annotations[policies.LEAKED_ANNOTATION]) & {h for h, _ in hashes}
    return identity, hashes, leaked


_TUPLES: dict[tuple, tuple] = {}  # role and audience lists: few distinct ones, shared by many tokens


def _shared(value):
    """One copy of a value many tokens repeat (namespace, account, roles...): each body parsed
    from JSON brings its own, and 100,000 tokens would keep 100,000 copies."""
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, tuple):
        value = tuple(sys.intern(v) if isinstance(v, str) else v for v in value)
        return _TUPLES.setdefault(value, value)
    return value


class TokenStore:
    """One credential kind in the index, with the phase gauge. ``forget(key)`` is told of each
    credential that is gone."""

    def __init__(self, kind: str, index: TokenIndex, forget: Callable[[TokenKey], None]) -> None:
        self.kind = kind
        self.index = index
        self.forget = forget
        # The phase of each object of the kind without a hash; one with a hash is in the index,
        # its phase in its Identity (a second dict of every token would cost 50 bytes a token).
        self.unhashed: dict[TokenKey, str] = {}

    def record(self, body: dict):
        metadata = body["metadata"]
        key = (self.kind, _shared(metadata["namespace"]), metadata["name"])  # the Identity's strings
        return key, (identity_from(self.kind, body), (body.get("status") or {}).get("phase") or "Pending")

    def put(self, key: TokenKey, record) -> None:
        found, phase = record
        old = self._phase(key)
        if found is None:
            self.index.remove(*key)
            self.unhashed[key] = sys.intern(phase)
        else:
            self.index.put(*found, key=key)
            self.unhashed.pop(key, None)
        self._count(old, phase)

    def drop(self, key: TokenKey) -> None:
        old = self._phase(key)
        self.index.remove(*key)
        self.unhashed.pop(key, None)
        self.forget(key)
        self._count(old, None)

    def keys(self):
        return [key for key in self.index.hashes_of if key[0] == self.kind] + list(self.unhashed)

    def _phase(self, key: TokenKey) -> str | None:
        """The phase counted for ``key`` now; None: not known."""
        identity = self.index.identity_of(key)
        if identity is not None:
            return identity.phase or "Pending"
        return self.unhashed.get(key)

    def _count(self, old: str | None, phase: str | None) -> None:
        if old:
            TOKENS_BY_PHASE.labels(kind=self.kind, phase=old).dec()
        if phase:
            TOKENS_BY_PHASE.labels(kind=self.kind, phase=phase).inc()


class AccountStore:
    """Accounts by (namespace, name): their uid, whether disabled, whether being deleted."""

    def __init__(self, index: TokenIndex, forget: Callable[[TokenKey], None] | None = None) -> None:
        self.index = index
        self.forget = forget  # told of each account gone: its workloads' last use is dropped

    def record(self, body: dict):
        metadata, spec = body["metadata"], body.get("spec") or {}
        workloads = spec.get("workloadIdentities")
        return (metadata["namespace"], metadata["name"]), Account(
            uid=metadata.get("uid") or "", disabled=bool(spec.get("disabled")),
            deleting=bool(metadata.get("deletionTimestamp")),
            workloads=tuple(w["serviceAccountName"] for w in workloads if isinstance(w, dict)
                            and isinstance(w.get("serviceAccountName"), str)) if isinstance(workloads, list) else ())

    def put(self, key: tuple[str, str], record: Account) -> None:
        self.index.put_account(key, record)

    def drop(self, key: tuple[str, str]) -> None:
        self.index.drop_account(key)
        if self.forget is not None:
            self.forget((WORKLOAD, *key))

    def keys(self):
        return list(self.index.accounts)
