"""Level-triggered decisions for minted tokens: revoke, roles, disabled, re-mint, leaks,
rotation requests and the end of a rotation's overlap.

Each decision is a policy over the token's current state (its status, its Secret, its
account and bindings); nothing here depends on seeing an event. Events (an account deleted
or edited, a binding changed, a Secret deleted or changed, a rotation requested) only ask
for a token to be settled; so does a resync of every token each ``resyncInterval``, and a
start or a relist (a resync then). The work queue runs each settle until it holds.

Writes follow one protocol, so that at every moment a client can observe, an Active
token's status.tokenHash is the hash of the token in its Secret, or of ``token.previous``
during a rotation's overlap: in the token's lock (this process's writers take turns), read
the Secret, then the token; write the Secret first, carrying the resourceVersion it was read
at, then the status, carrying the token's. A 409 means someone wrote in between: read again
and decide again. The minting reconcile reads the token first; it reads it again in the lock
and, before it replaces a value in the Secret, checks the token unchanged since.
"""
from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import kopf

from tokenwarden import reasons
from tokenwarden import clock, policies
from tokenwarden.conditions import condition, set_condition
from tokenwarden.durations import parse_duration
from tokenwarden.handlers import _events as events
from tokenwarden.handlers._bootstrap import settle_bootstrap
from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.handlers._listings import current, until_current
from tokenwarden.handlers._mint import reconcile_now, roles_for
from tokenwarden.handlers._rotation import ROTATE_ANNOTATION, rotate_token
from tokenwarden.handlers._token_kinds import (
    INGESTION_KEY,
    KINDS_BY_NAME,
    SERVICE_TOKEN,
    TERMINAL,
    Kind,
    spec_to_settle,
)
from tokenwarden.handlers._token_secrets import hash_or_none
from tokenwarden.handlers._work import TokenLocks, WorkQueue
from tokenwarden.kube import objects
from tokenwarden.kube import secrets as kube_secrets
from tokenwarden.kube._resources import GROUP, ROLE_BINDINGS, SERVICE_ACCOUNTS, VERSION

STEPS = 5  # decisions acted on in one settle; more (a token changing all the while) retries later
RELISTED_AFTER = 2.0  # seconds before a resync that failed is tried again
# What settle_token does for each decision's reason.
REVOKE = (reasons.ACCOUNT_DELETED, reasons.ACCOUNT_RECREATED)
REHASH = reasons.IMPORT_REHASH
REMINT = (reasons.SECRET_RECREATED, reasons.SECRET_TAMPERED, REHASH)
ROTATE = (policies.TOKEN_LEAKED, policies.ROTATION_REQUESTED, policies.RENEW_BEFORE_EXPIRY,
          policies.ROTATION_UNSUPPORTED, policies.ROTATION_REQUEST_TOO_LONG)
ROLES_STALE, ACCOUNT_DISABLED, ACCOUNT_ENABLED = reasons.ROLES_CHANGED, reasons.ACCOUNT_DISABLED, reasons.ACCOUNT_ENABLED
OVERLAP_ENDED, SECRET_LEFT = reasons.OVERLAP_ENDED, reasons.SECRET_LEFT
# Ready reasons that the roles and disabled decisions may replace; any other stays.
_ROLE_REASONS = (reasons.ROLES_NOT_GRANTED, reasons.NO_ROLES_GRANTED, reasons.ACCOUNT_NOT_FOUND)


@dataclass(frozen=True)
class SecretSeen:
    """A token's Secret as a decision needs it: hashes only, so that a resync holding every
    token Secret of a listing holds no token."""

    name: str
    owned: bool
    value_hash: str | None = None
    previous_hash: str | None = None
    recorded_hash: str | None = None

    @classmethod
    def of(cls, found: kube_secrets.TokenSecret) -> SecretSeen:
        return cls(found.name, found.owned, hash_or_none(found.token), hash_or_none(found.previous),
                   found.recorded_hash)


@dataclass
class Resync:
    """When to resync, shared by reference: kopf hands each object's handlers a copy of the memo."""

    wanted: asyncio.Event = field(default_factory=asyncio.Event)  # a listing of kopf's began
    done: bool = False  # since start, or since the last one failed


class Account:
    """A token's ServiceAccount as a decision needs it: absent (``uid`` None) or not."""

    def __init__(self, uid: str | None, disabled: bool) -> None:
        self.uid, self.disabled = uid, disabled


def decide(kind: Kind, token: dict, spec, account: Account | None, found: SecretSeen | None,
           memo, now, whole: bool = True) -> policies.Action | None:
    """The first thing a minted token's current state calls for, or None. ``found`` is its
    Secret (None: there is none), ``account`` its ServiceAccount (None: it names none).
    ``whole`` False: ``spec`` is the object's less an edit not applied (spec_to_settle), and
    what minting does (a re-mint, a re-hash) waits for the edit to be corrected."""
    status = token.get("status") or {}
    phase = status.get("phase")
    imported = kind.has_roles and spec.import_ is not None
    namespace = token["metadata"]["namespace"]
    if account is not None:
        action = policies.revocation(phase=phase, minted=bool(status.get("tokenHash")),
                                     account=spec.service_account_name, account_uid=account.uid,
                                     minted_for_uid=status.get("accountUID"))
        if action:
            return action
    if phase in TERMINAL:
        if phase == "Revoked" and found is not None and found.owned:
            return policies.Action(SECRET_LEFT, "the token is revoked: its Secret goes")
        return None
    if phase != "Active":
        return None  # not minted yet: minting's (and the sweep's)
    expires_at = policies.parse_time(status.get("expiresAt"))
    if expires_at is not None and expires_at <= now:
        return None  # the expiry's
    origin = None
    if found is not None and found.owned:
        origin = policies.secret_value_origin(found.value_hash, found.previous_hash, found.recorded_hash,
                                              status.get("tokenHash"))
    renew_before = parse_duration(spec.rotation.renew_before) if spec.rotation else None
    annotations = token["metadata"].get("annotations") or {}
    rotation = policies.rotation_due(phase=phase, expires_at=expires_at, renew_before=renew_before,
                                     request=annotations.get(ROTATE_ANNOTATION),
                                     handled_request=status.get("rotationRequest"), imported=imported, now=now,
                                     leaked=policies.leak_pending(annotations.get(policies.LEAKED_ANNOTATION),
                                                                  status.get("tokenHash"),
                                                                  status.get("previousTokenHash")))
    if status.get("secretName") and whole:
        action = policies.remint(phase=phase, imported=imported, secret_found=found is not None,
                                 owned=found is not None and found.owned, origin=origin)
        # A rotation replaces a tampered value itself, keeping no previous token: one re-mint, not two.
        if action and not (rotation and action.reason == reasons.SECRET_TAMPERED):
            return action
    if whole and imported and policies.import_hash_outdated(status.get("tokenHash"),
                                                  memo.import_keys.predates(status.get("issuedAt"))):
        return policies.Action(REHASH, "the imported key's hash is made again under the cluster's import key")
    if rotation:
        return rotation
    if kind.has_roles:
        action = _roles_decision(kind, spec, status, namespace, account, memo)
        if action:
            return action
    if origin == policies.CURRENT and policies.overlap_ended(
            previous_valid_until=policies.parse_time(status.get("previousValidUntil")),
            previous_in_secret=found.previous_hash is not None, now=now):
        return policies.Action(OVERLAP_ENDED, "the rotation's overlap has ended: the previous token goes")
    return None


def _roles_decision(kind: Kind, spec, status: dict, namespace: str, account: Account | None,
                    memo) -> policies.Action | None:
    """Roles and disabled, as the account's bindings and spec stand now."""
    reason = (condition(status.get("conditions"), "Ready") or {}).get("reason")
    plan = roles_for(kind, spec, namespace, memo)
    if isinstance(plan, policies.Problem):
        if plan.reason == reasons.ACCOUNT_NOT_FOUND:
            return None  # the revocation's, once the account is confirmed gone
        if (reason, status.get("effectiveRoles")) != (plan.reason, []):
            return policies.Action(plan.reason, plan.message)
        return None
    disabled = account is not None and account.disabled
    if status.get("effectiveRoles") != plan.effective_roles or (reason in _ROLE_REASONS and not disabled):
        return policies.Action(ROLES_STALE, "roles updated from the account's bindings")
    if disabled and reason != reasons.ACCOUNT_DISABLED:
        return policies.Action(ACCOUNT_DISABLED, f"ServiceAccount {spec.service_account_name!r} is disabled: the "
                                                 "token fails verification until the account is enabled")
    if not disabled and reason == reasons.ACCOUNT_DISABLED:
        return policies.Action(ACCOUNT_ENABLED, "the account is enabled again")
    return None


def settle_token(kind: Kind, namespace: str, name: str, memo, logger) -> None:
    """Act on what the token's current state calls for, one decision at a time, each made on
    a fresh read in the token's lock; raises (to be retried) while a write does not hold."""
    for _ in range(STEPS):
        with memo.token_locks(namespace, name), kube_errors_to_kopf(delay=1):
            if not _settle_step(kind, namespace, name, memo, logger):
                return
    raise kopf.TemporaryError(f"{kind.resource.kind} {namespace}/{name} kept changing; settling it again")


def _settle_step(kind: Kind, namespace: str, name: str, memo, logger) -> bool:
    """One decision acted on; False when there was none."""
    token = objects.get_object(memo.custom, kind.resource, namespace, name)
    if token is None or token["metadata"].get("deletionTimestamp") or not (token.get("status") or {}).get("phase"):
        return False
    spec, whole = spec_to_settle(kind, token.get("spec"))
    if spec is None:
        return False  # nothing of the spec to decide on: minting's to report
    status = token["status"]
    account = None
    if kind.has_roles and spec.service_account_name:
        found_account = objects.get_object(memo.custom, SERVICE_ACCOUNTS, namespace, spec.service_account_name)
        alive = found_account is not None and not found_account["metadata"].get("deletionTimestamp")
        account = Account(found_account["metadata"]["uid"] if alive else None,
                          alive and bool((found_account.get("spec") or {}).get("disabled")))
    found = None
    secret_name = status.get("secretName")
    if secret_name:
        owner = kube_secrets.Owner(kind.resource.kind, name, token["metadata"]["uid"])
        found = kube_secrets.read_token_secret(memo.core, namespace, secret_name, owner)
        # Read the token again after its Secret: a writer in between wrote the Secret first,
        # so what is decided below is decided on the newer status, and written on its version.
        token = objects.get_object(memo.custom, kind.resource, namespace, name)
        if token is None:
            return False
        status = token.get("status") or {}
    action = decide(kind, token, spec, account, SecretSeen.of(found) if found else None, memo, clock.now(),
                    whole)
    if action is None:
        _after_overlap(kind, namespace, name, status, memo)
        return False
    logger.info(f"{kind.resource.kind} {namespace}/{name}: {action.reason}: {action.message}")
    rv = token["metadata"]["resourceVersion"]
    if action.reason in REVOKE:
        _revoke(kind, token, action, memo)
    elif action.reason == SECRET_LEFT:
        kube_secrets.delete_token_secret(memo.core, namespace, secret_name,
                                         kube_secrets.Owner(kind.resource.kind, name, token["metadata"]["uid"]))
    elif action.reason in REMINT:
        reconcile_now(kind, token, memo, logger)
    elif action.reason in ROTATE:
        rotate_token(kind, namespace, name, memo, logger)
    elif action.reason == OVERLAP_ENDED:
        kube_secrets.drop_previous_token(memo.core, namespace, secret_name, found.resource_version)
        objects.patch_status(memo.custom, kind.resource, namespace, name,
                             {"previousTokenHash": None, "previousValidUntil": None}, resource_version=rv)
    else:
        _roles_status(kind, token, spec, action, memo)
    return True


def _revoke(kind: Kind, token: dict, action: policies.Action, memo) -> None:
    """Revoked in status first (the authenticator stops accepting it), then its Secret goes."""
    meta, status = token["metadata"], token.get("status") or {}
    conditions = set_condition(status.get("conditions"), "Ready", False, action.reason, action.message,
                               generation=meta.get("generation"), now=clock.now())
    objects.patch_status(memo.custom, kind.resource, meta["namespace"], meta["name"],
                         {"phase": "Revoked", "conditions": conditions}, resource_version=meta["resourceVersion"])
    events.warn(token, reason=action.reason, message=action.message)
    secret_name = status.get("secretName")
    if secret_name:
        kube_secrets.delete_token_secret(memo.core, meta["namespace"], secret_name,
                                         kube_secrets.Owner(kind.resource.kind, meta["name"], meta["uid"]))


def _roles_status(kind: Kind, token: dict, spec, action: policies.Action, memo) -> None:
    meta, status = token["metadata"], token.get("status") or {}
    plan = roles_for(kind, spec, meta["namespace"], memo)
    if isinstance(plan, policies.Problem):
        update, ready = {"effectiveRoles": []}, (False, plan.reason, plan.message)
    elif action.reason == ACCOUNT_DISABLED:
        update, ready = {"effectiveRoles": plan.effective_roles}, (False, ACCOUNT_DISABLED, action.message)
    else:
        update, ready = {"effectiveRoles": plan.effective_roles}, (True, reasons.MINTED, action.message)
    update["conditions"] = set_condition(status.get("conditions"), "Ready", *ready,
                                         generation=meta.get("generation"), now=clock.now())
    objects.patch_status(memo.custom, kind.resource, meta["namespace"], meta["name"], update,
                         resource_version=meta["resourceVersion"])


def _after_overlap(kind: Kind, namespace: str, name: str, status: dict, memo) -> None:
    """Settle again when a rotation's overlap ends, so its previous token goes then."""
    until = policies.parse_time(status.get("previousValidUntil"))
    if until is not None and status.get("phase") == "Active":
        delay = policies.seconds_until(until, clock.now())
        if delay > 0:
            request_settle(memo, kind, namespace, name, delay=delay + 1)


def request_settle(memo, kind: Kind, namespace: str, name: str, delay: float = 0.0) -> None:
    """Have the token settled (now, or after ``delay`` seconds), retried until it holds."""
    memo.work.submit(("settle", kind.resource.kind, namespace, name), settle_token, kind, namespace, name,
                     memo, memo.work_logger, delay=delay)


def request_account_tokens(memo, namespace: str, account: str) -> None:
    for entry in memo.indexes.tokens.get((namespace, account)):
        request_settle(memo, SERVICE_TOKEN, namespace, entry.name)


def resync(memo, logger) -> int:
    """One listing of every token and every token Secret; the tokens whose state calls for
    something are settled. Returns how many. Decided on the listing and the indexes (no call
    per token); each settle reads again before it acts."""
    secrets: dict[str, SecretSeen] = {}
    requested = 0
    now = clock.now()
    for scope in objects.listing_scopes(memo.namespaces):
        for _, owner_uid, secret in kube_secrets.iter_token_secrets(memo.core, scope):
            secrets[owner_uid] = SecretSeen.of(secret)
    for kind in (SERVICE_TOKEN, INGESTION_KEY):
        for scope in objects.listing_scopes(memo.namespaces):
            for token in objects.iter_objects(memo.custom, kind.resource, scope):
                if _needs_settle(kind, token, secrets, memo, now):
                    meta = token["metadata"]
                    request_settle(memo, kind, meta["namespace"], meta["name"])
                    requested += 1
    return requested


def _needs_settle(kind: Kind, token: dict, secrets: dict, memo, now) -> bool:
    meta, status = token["metadata"], token.get("status") or {}
    if meta.get("deletionTimestamp") or not status.get("phase"):
        return False
    spec, whole = spec_to_settle(kind, token.get("spec"))
    if spec is None:
        return False
    account = None
    if kind.has_roles and spec.service_account_name:
        entries = memo.indexes.accounts.get((meta["namespace"], spec.service_account_name))
        # An entry without a uid is taken as the account minted for; a settle reads the account.
        uid = next((getattr(e, "uid", "") for e in entries), "") or status.get("accountUID") or "present"
        account = Account(uid if entries else None, any(e.disabled for e in entries))
    found = secrets.get(meta["uid"])
    if found is not None and found.name != status.get("secretName"):
        found = None
    return decide(kind, token, spec, account, found, memo, now, whole) is not None


async def _resync_loop(memo, logger) -> None:
    """A resync at start (what changed while no operator ran), after each of kopf's listings
    (a relist after a watch expired, a standby taking over) and each resyncInterval; the
    bootstrap token too (values without a bootstrap section leave no Secret, and no token)."""
    interval = memo.settings.resync_interval.total_seconds()
    state = memo.resync
    started = False
    while True:
        # At start, kopf's first listing is waited for: the indexes are complete after it.
        timeout = (interval if state.done else RELISTED_AFTER) if started else None
        started = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(state.wanted.wait(), timeout)
        # A standby waits here until it leads; any replica until every kind is listed (the
        # other kinds' listings, begun with the one that asked, end first).
        await until_current(memo)
        state.wanted.clear()  # what the listings that ended meanwhile asked for, this resync does
        if current(memo):
            state.done = True
            try:
                if memo.settings.bootstrap.namespace:
                    memo.work.submit(("bootstrap",), settle_bootstrap, memo, logger)
                count = await asyncio.to_thread(resync, memo, logger)
                if count:
                    logger.info(f"resync: {count} token(s) to settle")
            except Exception as exc:  # noqa: BLE001  (the next resync tries again)
                state.done = False
                logger.warning(f"resync failed, trying again: {exc}")


@kopf.on.startup()
async def start_settling(memo, logger, **_) -> None:
    memo.token_locks = TokenLocks()
    memo.work = WorkQueue(logger)
    memo.work_logger = logger
    memo.request_settle = lambda *args, **kwargs: request_settle(memo, *args, **kwargs)
    memo.resync = Resync()
    memo.resync_wanted = memo.resync.wanted  # what asks for a resync from elsewhere sets this
    memo.account_states = {}  # (namespace, name) → what an account's tokens depend on, as last settled for
    memo.binding_states = {}  # (namespace, name) → a binding's uid, spec, deletion, as last settled for
    memo.work_task = asyncio.create_task(memo.work.run())
    memo.resync_task = asyncio.create_task(_resync_loop(memo, logger))


@kopf.on.cleanup()
async def stop_settling(memo, **_) -> None:
    for task in (getattr(memo, "resync_task", None), getattr(memo, "work_task", None)):
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# Triggers: each only asks for tokens to be settled; what is done is decided then. An event
# of one of kopf's listings (no type) settles nothing: the end of the listing asks for one
# resync instead (listing_ended in _indexes.py), which decides on a listing of its own.

def _register(kind: Kind) -> None:
    @kopf.on.event(GROUP, VERSION, kind.resource.plural, id="settle-on-request",
                   when=lambda body, **_: policies.rotation_requested(
                       body.metadata.annotations.get(ROTATE_ANNOTATION), body.status.get("rotationRequest"))
                   or policies.leak_pending(body.metadata.annotations.get(policies.LEAKED_ANNOTATION),
                                            body.status.get("tokenHash"), body.status.get("previousTokenHash")))
    async def rotation_requested(namespace, name, memo, **_):
        request_settle(memo, kind, namespace, name)


for _kind in (SERVICE_TOKEN, INGESTION_KEY):
    _register(_kind)


@kopf.on.event(GROUP, VERSION, SERVICE_ACCOUNTS.plural, id="settle-account-tokens")
async def account_changed(type, body, name, namespace, memo, **_):
    """Created, deleted, disabled or enabled: its tokens are revoked or marked when settled. A
    change that leaves what they depend on as it was (a status write: its token count, the last
    use of its workload identities) settles nothing."""
    key = (namespace, name)
    if type == "DELETED":
        memo.account_states.pop(key, None)
    else:
        state = (body.metadata.get("uid"), bool(body.spec.get("disabled")),
                 bool(body.metadata.get("deletionTimestamp")))
        if memo.account_states.get(key) == state:
            return
        memo.account_states[key] = state
        if type is None:
            return  # listed: what changed while nobody watched is the listing's resync's
    request_account_tokens(memo, namespace, name)


@kopf.on.event(GROUP, VERSION, ROLE_BINDINGS.plural, id="settle-binding-tokens")
async def binding_changed(type, body, name, namespace, memo, **_):
    """A binding created, deleted or edited: the tokens of the account it names (and named)
    have their roles brought up to date. A status write settles nothing."""
    key = (namespace, name)
    before = memo.binding_states.pop(key, None)
    state = None if type == "DELETED" else (
        body.metadata.get("uid"), dict(body.spec), bool(body.metadata.get("deletionTimestamp")))
    if state is not None:
        memo.binding_states[key] = state
    if type is None or state == before:
        return  # listed: what changed while nobody watched is the listing's resync's
    for account in {s[1].get("serviceAccountName") for s in (before, state) if s is not None} - {None, ""}:
        request_account_tokens(memo, namespace, account)


def settle_secret_owner(body, namespace, memo) -> None:
    """A token Secret deleted or changed: its token is settled (re-minted when it must be)."""
    ref = next((r for r in body.metadata.get("ownerReferences") or [] if r.get("controller")), None)
    kind = KINDS_BY_NAME.get(ref.get("kind")) if ref else None
    if kind is not None:
        request_settle(memo, kind, namespace, ref["name"])
