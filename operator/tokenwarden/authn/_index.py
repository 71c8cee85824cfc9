"""The authenticator's in-memory view: token hash → identity, account → its uid and state."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tokenwarden.tokens import hash_token, hmac_token


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


@dataclass
class TokenIndex:
    by_hash: dict[str, Identity] = field(default_factory=dict)
    accounts: dict[tuple[str, str], Account] = field(default_factory=dict)  # (namespace, name)
    hashes_of: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)
    import_key: bytes | None = None  # the cluster key imported keys are hashed with, once read

    def lookup(self, token: str) -> Identity | None:
        """The identity ``token`` hashes to: a minted token by its sha256, an imported key by
        its HMAC under the import key."""
        found = self.by_hash.get(hash_token(token))
        if found is None and self.import_key is not None:
            found = self.by_hash.get(hmac_token(token, self.import_key))
        return found

    def put(self, identity: Identity, hashes: list[tuple[str, datetime | None]]) -> None:
        """Replace everything known of one token with ``hashes`` (current and previous)."""
        self.remove(identity.kind, identity.namespace, identity.name)
        key = (identity.kind, identity.namespace, identity.name)
        self.hashes_of[key] = set()
        for token_hash, valid_until in hashes:
            entry = identity if valid_until is None else _with_previous(identity, valid_until)
            self.by_hash[token_hash] = entry
            self.hashes_of[key].add(token_hash)

    def remove(self, kind: str, namespace: str, name: str) -> None:
        for token_hash in self.hashes_of.pop((kind, namespace, name), set()):
            self.by_hash.pop(token_hash, None)

    def account_of(self, identity: Identity) -> Account | None:
        return self.accounts.get((identity.namespace, identity.account)) if identity.account else None

    def __len__(self) -> int:
        return len(self.by_hash)


def _with_previous(identity: Identity, valid_until: datetime) -> Identity:
    from dataclasses import replace

    return replace(identity, previous_valid_until=valid_until)
