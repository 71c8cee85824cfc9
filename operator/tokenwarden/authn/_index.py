"""The authenticator's in-memory view: token hash → identity, account → its uid and state."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from tokenwarden.tokens import hash_token, hmac_token

# The kind of a workload's Identity: it is its account. Its last use is recorded under it.
WORKLOAD = "ServiceAccount"


@dataclass(frozen=True)
class Identity:
    kind: str                     # ServiceToken | IngestionAPIKey
    namespace: str
    name: str
    account: str | None
    roles: tuple[str, ...]        # effective roles, project-scoped ones as role@project
    phase: str | None
    expires_at: datetime | None
    previous_valid_until: datetime | None = None  # for a rotated-out hash
    project: str | None = None    # an IngestionAPIKey's one project; None: every project
    audiences: tuple[str, ...] = ()  # a ServiceToken's spec.audiences; empty: the default ones
    account_uid: str | None = None  # the uid of the account it was minted for (status.accountUID)
    deleting: bool = False        # the object has a deletionTimestamp
    token_id: str | None = None   # status.tokenId: the public id, for the access log
    leaked: bool = False          # this hash is recorded as leaked (tokenwarden.io/leaked)

    @property
    def subject(self) -> str:
        """Who the credential is, naming its kind: a standalone token named like an account
        never shares the account's identity."""
        if self.kind == "IngestionAPIKey":
            return f"tokenwarden:{self.namespace}:ingestionapikey:{self.name}"
        if self.account:
            return f"tokenwarden:{self.namespace}:serviceaccount:{self.account}"
        return f"tokenwarden:{self.namespace}:token:{self.name}"


@dataclass(frozen=True)
class Account:
    uid: str
    disabled: bool = False
    deleting: bool = False        # the object has a deletionTimestamp
    roles: tuple[str, ...] = ()   # status.effectiveRoles: what its workload identities are granted
    workloads: tuple[str, ...] = ()  # spec.workloadIdentities: Kubernetes ServiceAccount names


@dataclass
class TokenIndex:
    by_hash: dict[str, Identity] = field(default_factory=dict)
    accounts: dict[tuple[str, str], Account] = field(default_factory=dict)  # (namespace, name)
    hashes_of: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)
    import_key: bytes | None = None  # the cluster key imported keys are hashed with, once read
    # (namespace, Kubernetes ServiceAccount) → the accounts that list it (more than one: none is granted)
    workloads: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def lookup(self, token: str) -> Identity | None:
        """The identity ``token`` hashes to: a minted token by its sha256, an imported key by
        its HMAC under the import key."""
        found = self.by_hash.get(hash_token(token))
        if found is None and self.import_key is not None:
            found = self.by_hash.get(hmac_token(token, self.import_key))
        return found

    def put(self, identity: Identity, hashes: list[tuple[str, datetime | None]],
            leaked: frozenset[str] = frozenset()) -> None:
        """Replace everything known of one token with ``hashes`` (current and previous); those
        of them in ``leaked`` are refused."""
        self.remove(identity.kind, identity.namespace, identity.name)
        key = (identity.kind, identity.namespace, identity.name)
        self.hashes_of[key] = set()
        for token_hash, valid_until in hashes:
            entry = identity if valid_until is None else _with_previous(identity, valid_until)
            if token_hash in leaked:
                entry = replace(entry, leaked=True)
            self.by_hash[token_hash] = entry
            self.hashes_of[key].add(token_hash)

    def remove(self, kind: str, namespace: str, name: str) -> None:
        for token_hash in self.hashes_of.pop((kind, namespace, name), set()):
            self.by_hash.pop(token_hash, None)

    def put_account(self, key: tuple[str, str], account: Account) -> None:
        """Replace what is known of the account ``key`` = (namespace, name), with its workloads."""
        self.drop_account(key)
        self.accounts[key] = account
        namespace, name = key
        for workload in account.workloads:
            self.workloads.setdefault((namespace, workload), set()).add(name)

    def drop_account(self, key: tuple[str, str]) -> None:
        old = self.accounts.pop(key, None)
        namespace, name = key
        for workload in old.workloads if old else ():
            listing = self.workloads.get((namespace, workload))
            if listing is not None:
                listing.discard(name)
                if not listing:
                    del self.workloads[(namespace, workload)]

    def account_of(self, identity: Identity) -> Account | None:
        return self.accounts.get((identity.namespace, identity.account)) if identity.account else None

    def __len__(self) -> int:
        return len(self.by_hash)


def _with_previous(identity: Identity, valid_until: datetime) -> Identity:
    return replace(identity, previous_valid_until=valid_until)
