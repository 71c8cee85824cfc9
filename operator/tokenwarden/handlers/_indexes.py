"""In-memory indexes of accounts, bindings and tokens, so handlers ask no API calls.

The operator lists every kind once at startup, before kopf starts watching, and
kopf's watch events keep the indexes current from then on: a handler always sees
every object that existed when the operator started, as kopf's own indexes promise.
kopf's indexes are not used because, on a restart, they hold every worker until each
listed object is indexed, and each indexed object wakes every waiting worker: with
10,000 tokens that is minutes of CPU before the first handler runs.

A replica whose watches stopped (a standby paused by peering, a watch that expired with
410 Gone and lists again) has indexes as old as its last event, and kopf's new listing sends
no event for an object deleted meanwhile (a deleted RoleBinding would still grant its
roles, a deleted token would still count against a quota). So the indexes are not fed by
handlers but by kopf's watch streams themselves (handlers/_listings.py): each kind is listed
and watched once per process, by kopf, and its objects reach the indexes as the stream
brings them, before any handler sees them. Two things follow:

- Replace: once kopf's listing of a kind ends, whatever of that kind (in that namespace,
  or all of them) was last seen before the listing began and is not in it is forgotten,
  as client-go's Reflector replaces its store.
- Order: kopf lists each kind in its own time, so a token's resume could run before the
  RoleBinding created meanwhile is listed (the token would go Pending). Tokens are listed
  after accounts and bindings, token Secrets after tokens (LISTED_FIRST); the handlers of
  accounts, bindings and tokens not minted yet wait until every kind has been listed since
  this replica last resumed (a gate handler per kind, which kopf runs before an object's
  resume, create or update handlers), and so do quotas, the resync and the timers.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

import kopf

from tokenwarden import reasons
from tokenwarden import policies
from tokenwarden.conditions import condition
from tokenwarden.durations import parse_duration
from tokenwarden.handlers._listings import install, until_current
from tokenwarden.kube._resources import (
    GROUP,
    INGESTION_KEYS,
    ROLE_BINDINGS,
    SERVICE_ACCOUNTS,
    SERVICE_TOKENS,
    VERSION,
    Resource,
)


@dataclass(frozen=True)
class AccountEntry:
    name: str
    disabled: bool
    created: str = ""  # creationTimestamp: accounts and tokens queue for quota in creation order
    uid: str = ""  # a token records the uid of the account it is minted for (status.accountUID)


@dataclass(frozen=True)
class TokenEntry:
    name: str
    phase: str | None
    roles: tuple[str, ...]
    effective_roles: tuple[str, ...] | None
    ready_reason: str | None
    created: str = ""


@dataclass
class Unsettled:
    """A token or key without a phase, or Pending, and when an event last touched it."""
    uid: str
    kind: str
    namespace: str
    name: str
    since: float


class Index:
    """key → the values objects put under it; each object's keys are replaced as a whole."""

    def __init__(self) -> None:
        self._values: dict[Hashable, dict[str, object]] = {}
        self._keys: dict[str, tuple[Hashable, ...]] = {}

    def replace(self, uid: str, mapping: dict | None) -> None:
        for key in self._keys.pop(uid, ()):
            values = self._values[key]
            del values[uid]
            if not values:
                del self._values[key]
        if mapping:
            self._keys[uid] = tuple(mapping)
            for key, value in mapping.items():
                self._values.setdefault(key, {})[uid] = value

    def get(self, key: Hashable) -> list:
        values = self._values.get(key)
        return list(values.values()) if values else []

    def __contains__(self, key: Hashable) -> bool:
        return key in self._values

    def items(self) -> list[tuple[Hashable, list]]:
        return [(key, list(values.values())) for key, values in list(self._values.items())]

    def counts(self) -> dict[Hashable, int]:
        return {key: len(values) for key, values in list(self._values.items())}


Indexer = Callable[[dict, "Indexes"], dict | None]


def _account(body: dict, _: Indexes) -> dict | None:
    """(namespace, name) → AccountEntry; namespace → AccountEntry (for quotas)."""
    meta = body["metadata"]
    if meta.get("deletionTimestamp"):
        return None
    entry = AccountEntry(meta["name"], bool((body.get("spec") or {}).get("disabled", False)),
                         meta.get("creationTimestamp") or "", meta["uid"])
    return {(meta["namespace"], meta["name"]): entry, meta["namespace"]: entry}


def _binding(body: dict, indexes: Indexes) -> dict | None:
    """(namespace, account) → Binding, for bindings that grant (policies.binding_grant: not being
    deleted, every role in the catalog), as the authenticator decides from its own watch."""
    meta = body["metadata"]
    grant = policies.binding_grant(body.get("spec") or {}, indexes.catalog,
                                   deleting=bool(meta.get("deletionTimestamp")))
    if grant is None:
        return None
    account, binding = grant
    return {(meta["namespace"], account): binding}


def _token(body: dict, _: Indexes) -> dict | None:
    """(namespace, account) → TokenEntry, for tokens that belong to an account."""
    spec, status = body.get("spec") or {}, body.get("status") or {}
    account = spec.get("serviceAccountName")
    if not account:
        return None
    ready = condition(status.get("conditions"), "Ready") or {}
    effective = status.get("effectiveRoles")
    entry = TokenEntry(body["metadata"]["name"], status.get("phase"), tuple(spec.get("roles") or ()),
                       tuple(effective) if effective is not None else None, ready.get("reason"),
                       body["metadata"].get("creationTimestamp") or "")
    return {(body["metadata"]["namespace"], account): entry}


def _hash(body: dict, _: Indexes) -> dict | None:
    """tokenHash → (namespace, name): one key may belong to one token only."""
    token_hash = (body.get("status") or {}).get("tokenHash")
    return {token_hash: (body["metadata"]["namespace"], body["metadata"]["name"])} if token_hash else None


def _import(body: dict, _: Indexes) -> dict | None:
    """(namespace, source Secret) → token name, for imported keys."""
    ref = ((body.get("spec") or {}).get("import") or {}).get("secretRef") or {}
    return {(body["metadata"]["namespace"], ref["name"]): body["metadata"]["name"]} if ref.get("name") else None


def _phase(body: dict, _: Indexes) -> dict | None:
    """(kind, phase) → True, for the tokens-by-phase metric."""
    return {(body["kind"], (body.get("status") or {}).get("phase") or "Pending"): True}


def waiting(body: dict) -> bool:
    """A token or key that waits on something that may send no event: not yet minted (no status,
    or Pending), or Failed for a Secret of its name that is not its own (SecretConflict), which
    may be any Secret, watched or not, and may go away at any time."""
    status = body.get("status") or {}
    phase = status.get("phase")
    if phase in (None, "Pending"):
        return True
    return phase == "Failed" and (condition(status.get("conditions"), "Ready") or {}).get("reason") == reasons.SECRET_CONFLICT


@dataclass(frozen=True, slots=True)
class CredentialTimes:
    """What the per-credential metrics show of one token or key: seconds since the epoch, or
    None where it has none."""
    phase: str
    expires: float | None
    last_used: float | None
    next_rotation: float | None
    created: float | None


def _epoch(text: str | None) -> float | None:
    try:
        moment = policies.parse_time(text)
    except ValueError:
        return None
    return moment.timestamp() if moment is not None else None


def _times(body: dict, _: Indexes) -> dict | None:
    """(namespace, kind, name) → CredentialTimes, for the per-credential metrics."""
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    if meta.get("deletionTimestamp"):
        return None
    expires = _epoch(status.get("expiresAt"))
    next_rotation = None
    renew_before = (spec.get("rotation") or {}).get("renewBefore")
    if expires is not None and renew_before and not spec.get("import"):  # an imported key never rotates
        try:
            next_rotation = expires - parse_duration(renew_before).total_seconds()
        except ValueError:
            pass
    times = CredentialTimes(status.get("phase") or "Pending", expires, _epoch(status.get("lastUsedAt")),
                            next_rotation, _epoch(meta.get("creationTimestamp")))
    return {(meta["namespace"], body["kind"], meta["name"]): times}


def _owner(body: dict, _: Indexes) -> dict | None:
    """uid → True for every token and key: a Secret whose owner is not here is an orphan."""
    return {body["metadata"]["uid"]: True}


class Indexes:
    """The operator's view of accounts, bindings, tokens and keys."""

    def __init__(self, catalog: Iterable[str]) -> None:
        self.catalog = frozenset(catalog)
        self.accounts, self.bindings = Index(), Index()
        self.tokens, self.hashes, self.imports, self.owners = Index(), Index(), Index(), Index()
        self.phases = Index()
        self.credentials = Index()  # for the per-credential metrics
        self.unsettled: dict[str, Unsettled] = {}
        # What else is told of every token and key seen (handlers/_schedule.py): set in the
        # operator's own indexes only.
        self.scheduler = None
        # uid → (kind, namespace, when an event or a read last showed it): what a listing replaces.
        self._seen: dict[str, tuple[str, str | None, float]] = {}
        # Hashes a handler adopted whose status has not landed yet: uid → (hash, (namespace, name)).
        self._claims: dict[str, tuple[str, tuple[str, str]]] = {}
        self._claims_lock = threading.Lock()
        self._by_kind: dict[str, tuple[tuple[Index, Indexer], ...]] = {
            SERVICE_ACCOUNTS.kind: ((self.accounts, _account),),
            ROLE_BINDINGS.kind: ((self.bindings, _binding),),
            SERVICE_TOKENS.kind: ((self.tokens, _token), (self.hashes, _hash), (self.imports, _import),
                                  (self.owners, _owner), (self.phases, _phase), (self.credentials, _times)),
            INGESTION_KEYS.kind: ((self.owners, _owner), (self.phases, _phase), (self.credentials, _times)),
        }

    def observe(self, kind: str, body: dict, deleted: bool = False) -> None:
        uid = body["metadata"]["uid"]
        if deleted:
            self._seen.pop(uid, None)
        else:
            self._seen[uid] = (kind, body["metadata"].get("namespace"), time.monotonic())
        for index, indexer in self._by_kind[kind]:
            index.replace(uid, None if deleted else indexer(body, self))
        if kind == SERVICE_TOKENS.kind and uid in self._claims:
            status = body.get("status") or {}
            with self._claims_lock:
                claim = self._claims.get(uid)
                if claim and (deleted or status.get("phase") == "Failed" or status.get("tokenHash") == claim[0]):
                    del self._claims[uid]  # the outcome landed: the hashes index speaks from here
        if kind in (SERVICE_TOKENS.kind, INGESTION_KEYS.kind):
            if self.scheduler is not None:
                self.scheduler.observe(kind, body, deleted)
            meta = body["metadata"]
            if deleted or meta.get("deletionTimestamp") or not waiting(body):
                self.unsettled.pop(uid, None)
            else:
                self.unsettled[uid] = Unsettled(uid, kind, meta["namespace"], meta["name"], time.monotonic())

    def claim_hash(self, token_hash: str, uid: str, who: tuple[str, str],
                   also_held_as: str | None = None) -> tuple[str, str] | None:
        """(namespace, name) of another token that holds ``token_hash`` (or, in status only,
        ``also_held_as``: the same key as hashed before), or None once it is claimed for
        ``uid``. Handlers run in threads and a status lands after its handler returns, so
        without the claim two tokens adopting one key at once would both win."""
        with self._claims_lock:
            holders = [h for h in self.hashes.get(token_hash) if h != who]
            if also_held_as:
                holders += [h for h in self.hashes.get(also_held_as) if h != who]
            holders += [h for u, (claimed, h) in self._claims.items() if claimed == token_hash and u != uid]
            if holders:
                return min(holders)
            self._claims[uid] = (token_hash, who)
            return None

    def learn(self, entry: Unsettled, body: dict | None) -> None:
        """What a read of an unsettled object found: its current state, or that it is gone
        (or was replaced by a namesake with another uid)."""
        if body is None or body["metadata"]["uid"] != entry.uid:
            self.observe(entry.kind, {"metadata": {"uid": entry.uid}}, deleted=True)
        if body is not None:
            self.observe(entry.kind, body)

    def stale_unsettled(self, age: float, limit: int) -> list[Unsettled]:
        """Up to ``limit`` unsettled objects no event has touched for ``age`` seconds; each
        is marked touched now, so it is handed out again only after another ``age``."""
        now = time.monotonic()
        stale = [entry for entry in list(self.unsettled.values()) if now - entry.since >= age][:limit]
        for entry in stale:
            entry.since = now
        return stale

    def prune(self, kind: str, existing: set[str], since: float, namespace: str | None = None) -> int:
        """Forget the objects of ``kind`` (in ``namespace``, or in any) last seen before ``since``
        that a listing begun at ``since`` did not find (``existing``: their uids); returns how
        many. Whatever was created or changed since was seen since, and what is deleted later
        has its DELETED event."""
        gone = [uid for uid, (k, ns, at) in list(self._seen.items())
                if k == kind and at < since and uid not in existing and (namespace is None or ns == namespace)]
        for uid in gone:
            self.observe(kind, {"metadata": {"uid": uid}}, deleted=True)
        return len(gone)


RESOURCES: tuple[Resource, ...] = (SERVICE_ACCOUNTS, ROLE_BINDINGS, SERVICE_TOKENS, INGESTION_KEYS)
_logger = logging.getLogger("tokenwarden.indexes")


def _forgot(memo, kind: str, gone: int) -> None:
    if gone:
        _logger.info(f"indexes: dropped {gone} {kind} object(s) deleted while no watch saw them")
        _resync(memo)  # what they granted or took is decided again


def _resync(memo) -> None:
    resync = getattr(memo, "resync_wanted", None)
    if resync is not None:
        resync.set()


def listing_ended(memo, kind: str, namespace: str | None, uids: set[str], began: float) -> None:
    """kopf's listing of ``kind`` (begun at ``began``) is over: it replaces what was indexed,
    and one resync decides what changed while nobody watched (at start, after a watch expired,
    when a standby takes over)."""
    _forgot(memo, kind, memo.indexes.prune(kind, uids, began, namespace))
    _resync(memo)


# Each kind's listing begins once these are listed (handlers/_listings.py): a token's handlers
# find its account and roles, a token Secret's handlers its token, without waiting.
LISTED_FIRST: dict = {
    SERVICE_TOKENS.kind: (SERVICE_ACCOUNTS.kind, ROLE_BINDINGS.kind),
    INGESTION_KEYS.kind: (SERVICE_ACCOUNTS.kind, ROLE_BINDINGS.kind),
    ("", "secrets"): (SERVICE_TOKENS.kind, INGESTION_KEYS.kind),
}


@kopf.on.startup()
def follow_listings(memo, logger, **_) -> None:
    """kopf's streams of the four kinds feed the indexes from here on (handlers/_listings.py)."""
    listings = install({(GROUP, resource.plural): resource.kind for resource in RESOURCES})
    listings.after.update(LISTED_FIRST)
    listings.observed = memo.indexes.observe
    listings.ended = lambda kind, namespace, uids, began: listing_ended(memo, kind, namespace, uids, began)
    memo.listings = listings
    logger.info("indexes: fed by kopf's listings and watches of accounts, bindings, tokens and keys")


def settled_token(body: dict) -> bool:
    """A token or key minted, with no change since: its handlers decide on its account and
    bindings alone, which are listed before it (LISTED_FIRST)."""
    status, meta = body.get("status") or {}, body.get("metadata") or {}
    return bool(status.get("tokenHash")) and status.get("phase") == "Active" and \
        status.get("observedGeneration") == meta.get("generation")


def _register(resource: Resource) -> None:
    tokens = resource in (SERVICE_TOKENS, INGESTION_KEYS)

    @kopf.on.event(GROUP, VERSION, resource.plural, id=f"listed-{resource.plural}")
    async def gate(body, namespace, memo, **_):
        # kopf lists at start, on resuming, after a 410: until every kind is listed, an
        # account's quota, a binding's account or a new token's quota would be decided on
        # part of the picture. Minted tokens, nearly all of a listing, need only what is
        # listed before them.
        if not (tokens and settled_token(body)):
            await until_current(memo, namespace)


for _resource in RESOURCES:
    _register(_resource)
