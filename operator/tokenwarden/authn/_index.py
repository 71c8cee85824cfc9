"""The authenticator's in-memory view: token hash → identity, account → its uid and state,
account → the roles its bindings grant."""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field, replace
from datetime import datetime

from tokenwarden import policies
from tokenwarden.config import Settings
from tokenwarden.policies import Binding

# The kind of a workload's Identity: it is its account. Its last use is recorded under it.
WORKLOAD = "ServiceAccount"


@dataclass(frozen=True, slots=True)  # slots: one of these per token, 100,000 of them in a big cluster
class Identity:
    kind: str                     # ServiceToken | IngestionAPIKey
    namespace: str
    name: str
    account: str | None
    # spec.roles: a standalone token's grant; an account's token's request (empty: all its
    # account is granted). What it carries now is TokenIndex.roles_of's.
    roles: tuple[str, ...]
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
    workloads: tuple[str, ...] = ()  # spec.workloadIdentities: Kubernetes ServiceAccount names


@dataclass(eq=False)
class Grant:
    """What an account's bindings grant: ``roles`` (its workloads carry them all, as do its
    tokens that request none), and the answer for each request its tokens make, kept until a
    binding of the account changes (a new Grant replaces this one)."""

    bindings: tuple[Binding, ...] = ()
    roles: tuple[str, ...] = ()
    requests: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)


NO_GRANT = Grant()


def _default_catalog() -> frozenset[str]:
    return frozenset(Settings().roles)


@dataclass
class TokenIndex:
    # The role catalog's names: a binding or standalone token naming another grants nothing.
    catalog: frozenset[str] = field(default_factory=_default_catalog)
    # Keyed by the raw digest (see _digest), 32 bytes where the hex string took 71 characters.
    by_hash: dict[bytes, Identity] = field(default_factory=dict)
    accounts: dict[tuple[str, str], Account] = field(default_factory=dict)  # (namespace, name)
    # (kind, namespace, name) → its digest, or a tuple of them while a rotation overlaps
    hashes_of: dict[tuple[str, str, str], bytes | tuple[bytes, ...]] = field(default_factory=dict)
    import_key: bytes | None = None  # the cluster key imported keys are hashed with, once read
    # (namespace, Kubernetes ServiceAccount) → the accounts that list it (more than one: none is granted)
    workloads: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    # digest → each object's identity for it, only while more than one object's status names it
    # (an import refused as a duplicate, or failed, keeps the hash it held): by_hash holds the one
    # that verifies, and one object going never takes the hash from another.
    shared: dict[bytes, dict[tuple[str, str, str], Identity]] = field(default_factory=dict)
    # Bindings that grant (policies.binding_grant): (namespace, binding) → its account, and
    # (namespace, account) → binding name → what it grants. A binding that grants nothing is
    # in neither: gone, being deleted or naming an unknown role, it is the same.
    bindings: dict[tuple[str, str], str] = field(default_factory=dict)
    bound: dict[tuple[str, str], dict[str, Binding]] = field(default_factory=dict)
    grants: dict[tuple[str, str], Grant] = field(default_factory=dict)  # (namespace, account) → its Grant
    standalone: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)  # spec.roles → granted

    def lookup(self, token: str) -> Identity | None:
        """The identity ``token`` hashes to: a minted token by its sha256, an imported key by
        its HMAC under the import key."""
        value = token.encode("utf-8")
        found = self.by_hash.get(hashlib.sha256(value).digest())  # hash_token's, undecoded
        if found is None and self.import_key is not None:
            found = self.by_hash.get(HMAC_MARK + hmac.digest(self.import_key, value, "sha256"))
        return found

    def put(self, identity: Identity, hashes: list[tuple[str, datetime | None]],
            leaked: frozenset[str] = frozenset(), key: tuple[str, str, str] | None = None) -> None:
        """Replace everything known of one token with ``hashes`` (current and previous); those
        of them in ``leaked`` are refused. ``key``: the caller's (kind, namespace, name), shared."""
        self.remove(identity.kind, identity.namespace, identity.name)
        key = key or (identity.kind, identity.namespace, identity.name)
        digests = []
        for token_hash, valid_until in hashes:
            entry = identity if valid_until is None else _with_previous(identity, valid_until)
            if token_hash in leaked:
                entry = replace(entry, leaked=True)
            digest = _digest(token_hash)
            held = self.by_hash.get(digest)
            if held is None:
                self.by_hash[digest] = entry
            else:
                holders = self.shared.setdefault(digest, {_key(held): held})
                holders[key] = entry
                self.by_hash[digest] = _verifying(holders)
            digests.append(digest)
        self.hashes_of[key] = digests[0] if len(digests) == 1 else tuple(digests)

    def remove(self, kind: str, namespace: str, name: str) -> None:
        digests = self.hashes_of.pop((kind, namespace, name), ())
        for digest in (digests,) if isinstance(digests, bytes) else digests:
            holders = self.shared.get(digest)
            if holders is None:
                self.by_hash.pop(digest, None)
                continue
            holders.pop((kind, namespace, name), None)
            self.by_hash[digest] = _verifying(holders)
            if len(holders) == 1:
                del self.shared[digest]

    def identity_of(self, key: tuple[str, str, str]) -> Identity | None:
        """The identity the object ``key`` = (kind, namespace, name) holds its current hash with."""
        digests = self.hashes_of.get(key)
        if digests is None:
            return None
        digest = digests if isinstance(digests, bytes) else digests[0]
        holders = self.shared.get(digest)
        return holders[key] if holders else self.by_hash[digest]

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

    def put_binding(self, key: tuple[str, str], account: str, binding: Binding | None) -> None:
        """What the binding ``key`` = (namespace, name) grants ``account`` now; None: nothing
        (gone, being deleted, or naming a role outside the catalog)."""
        namespace, name = key
        old = self.bindings.pop(key, None)
        if old is not None:
            self._bound(namespace, old, name, None)
        if binding is not None:
            self.bindings[key] = account
            self._bound(namespace, account, name, binding)

    def drop_binding(self, key: tuple[str, str]) -> None:
        self.put_binding(key, "", None)

    def _bound(self, namespace: str, account: str, name: str, binding: Binding | None) -> None:
        """Record (or, with None, forget) one binding of the account, and grant anew."""
        bound = self.bound.setdefault((namespace, account), {})
        if binding is None:
            bound.pop(name, None)
        else:
            bound[name] = binding
        if not bound:
            del self.bound[(namespace, account)]
            self.grants.pop((namespace, account), None)
            return
        bindings = tuple(bound[n] for n in sorted(bound))
        self.grants[(namespace, account)] = Grant(bindings, tuple(policies.granted_roles(bindings)))

    def granted(self, namespace: str, account: str) -> Grant:
        """What the account's bindings grant now."""
        return self.grants.get((namespace, account), NO_GRANT)

    def roles_of(self, identity: Identity) -> tuple[str, ...]:
        """The roles a ServiceToken carries now (policies.token_roles): a standalone one, its
        spec's; an account's, what of its request the account's bindings grant now."""
        if identity.account is None:
            return _answer(self.standalone, identity.roles, self.catalog, None, ())
        grant = self.grants.get((identity.namespace, identity.account), NO_GRANT)
        if not identity.roles:
            return grant.roles
        return _answer(grant.requests, identity.roles, self.catalog, identity.account, grant.bindings)

    def account_of(self, identity: Identity) -> Account | None:
        return self.accounts.get((identity.namespace, identity.account)) if identity.account else None

    def __len__(self) -> int:
        return len(self.by_hash)


ANSWERS_KEPT = 1024  # per cache of role answers: distinct role lists are few, unless made up


def _answer(answers: dict[tuple[str, ...], tuple[str, ...]], requested: tuple[str, ...], catalog: frozenset[str],
            account: str | None, bindings: tuple[Binding, ...]) -> tuple[str, ...]:
    """policies.token_roles for ``requested``, kept in ``answers`` (emptied when full)."""
    found = answers.get(requested)
    if found is None:
        if len(answers) >= ANSWERS_KEPT:
            answers.clear()
        found = answers[requested] = tuple(policies.token_roles(requested, catalog, account=account,
                                                                bindings=bindings))
    return found


HMAC_MARK = b"h"  # before an HMAC's digest: never equal to a sha256's, whatever the bytes


def _digest(token_hash: str) -> bytes:
    """The index's key for a hash as the status writes it: ``sha256:<hex>`` → its 32 bytes,
    ``hmac-sha256:<hex>`` → HMAC_MARK and its 32 bytes; anything else can match no token."""
    kind, _, hexdigest = token_hash.partition(":")
    if len(hexdigest) == 64 and kind in ("sha256", "hmac-sha256"):
        try:
            digest = bytes.fromhex(hexdigest)
        except ValueError:
            pass
        else:
            return digest if kind == "sha256" else HMAC_MARK + digest
    return b"?" + token_hash.encode("utf-8")


def _key(identity: Identity) -> tuple[str, str, str]:
    return identity.kind, identity.namespace, identity.name


def _verifying(holders: dict[tuple[str, str, str], Identity]) -> Identity:
    """Of several objects naming one hash, the one whose token it is: an Active one (the
    operator lets one object at a time hold a value), else the first by name."""
    return min(holders.values(), key=lambda i: (i.phase != "Active" or i.deleting, _key(i)))


def _with_previous(identity: Identity, valid_until: datetime) -> Identity:
    return replace(identity, previous_valid_until=valid_until)
