"""Mint ServiceTokens and IngestionAPIKeys into Secrets.

The handler is level-triggered and idempotent: whatever crashed before, it finds
the Secret it wrote (by owner uid) and reuses its token, so a token is minted
once per object. Only the hash reaches the status.

The status, not the Secret, says which value is the token: a value in the Secret is
taken only when it hashes to status.tokenHash, or, when a crash left no hash in
status, to the hash tokenwarden recorded on the Secret as it wrote it. A value written
by hand is refused, and a new token is minted into the Secret.
"""
from __future__ import annotations

import asyncio
import time
from datetime import datetime

import kopf
from pydantic import ValidationError

from tokenwarden import reasons
from tokenwarden import policies
from tokenwarden.api import describe_validation_error
from tokenwarden.conditions import condition, rfc3339, set_condition
from tokenwarden.handlers import _events as events
from tokenwarden.handlers._accounts import account_quota
from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.handlers._imports import adopt_imported
from tokenwarden.handlers._metrics import MINT_DURATION, MINT_SECONDS, MINTED
from tokenwarden.handlers._token_kinds import (
    INGESTION_KEY,
    SERVICE_TOKEN,
    TERMINAL,
    WAIT_DELAY,
    Kind,
    TokenStatus,
    now,
    past,
)
from tokenwarden.handlers._token_secrets import (
    Credential,
    hash_or_none,
    replace_tampered_token,
    secret_conflict,
    write_secret,
)
from tokenwarden.kube import objects
from tokenwarden.kube import secrets as kube_secrets
from tokenwarden.kube._resources import GROUP, VERSION
from tokenwarden.tokens import hash_token, mint_token, new_token_id


def roles_for(kind: Kind, spec, namespace: str, memo):
    if not kind.has_roles:
        return policies.RolePlan(["ingest"])
    account = spec.service_account_name
    return policies.plan_roles(
        spec.roles,
        memo.settings.roles,
        account=account,
        account_exists=account is not None and (namespace, account) in memo.indexes.accounts,
        bindings=memo.indexes.bindings.get((namespace, account)) if account else [],
    )


class CallsTheAPI(Exception):
    """reconcile_token(blocking=False) came to a step that calls the API: run it in a thread."""


def reconcile_token(kind: Kind, body: kopf.Body, patch: kopf.Patch, memo, logger,
                    resuming: bool = False, fresh: bool = False, blocking: bool = True) -> None:
    """Mint the token, or bring its status up to date. ``blocking`` False: decide on the body
    and the indexes only, and raise CallsTheAPI (having written nothing) where a call is due."""
    name, namespace, uid = body.metadata.name, body.metadata.namespace, body.metadata.uid
    status = body.status
    out = TokenStatus(body, patch, now())
    if status.get("phase") in TERMINAL:
        return
    try:
        spec = kind.spec_model.model_validate(dict(body.spec))
    except ValidationError as exc:
        problem = policies.Problem(reasons.INVALID_SPEC, describe_validation_error(exc))
        if status.get("phase") == "Active" and status.get("tokenHash"):
            _edit_not_applied(out, problem)
        else:
            out.problem(problem, "Failed")
        return

    plan = roles_for(kind, spec, namespace, memo)
    if isinstance(plan, policies.Problem):
        if plan.reason == reasons.ACCOUNT_NOT_FOUND and status.get("tokenHash"):
            return  # minted for an account that is gone: revoked (handlers._settle), never Pending
        if plan.waiting:
            out.ready(False, plan.reason, plan.message, phase="Pending")
            raise kopf.TemporaryError(plan.message, delay=WAIT_DELAY)
        out.problem(plan, "Failed")
        return

    imported = kind.has_roles and spec.import_ is not None
    minted = status.get("phase") == "Active" and status.get("tokenHash")
    if minted and past(status.get("expiresAt")):
        return  # the expiry (handlers/_schedule.py) takes it from here; never re-mint an expired token
    if resuming and minted and status.get("observedGeneration") == out.generation and \
            not (imported and policies.import_hash_outdated(
                status.get("tokenHash"), memo.import_keys.predates(status.get("issuedAt")))):
        # Already minted and nothing changed while we were away: no Secret read, no re-mint.
        if kind.has_roles and status.get("effectiveRoles") != plan.effective_roles:
            patch.status["effectiveRoles"] = plan.effective_roles
        account_uid = None if status.get("accountUID") or not kind.has_roles else \
            _account_uid(spec, namespace, memo, created_by=status.get("issuedAt"))
        if account_uid:
            # Minted by a version that did not record it: the account now is the one it was
            # minted for, unless that one was created after the token.
            patch.status["accountUID"] = account_uid
        return
    if not blocking:
        raise CallsTheAPI()
    if minted and not fresh:
        # A rotation or a Secret's handler may have written since this body was read: decide
        # on a fresh read, in the token's lock, and write on the version read.
        with kube_errors_to_kopf():
            current = objects.get_object(memo.custom, kind.resource, namespace, name)
        if current is not None and current["metadata"]["uid"] == uid:
            reconcile_now(kind, current, memo, logger)
        return
    if imported and not fresh:
        # The source's owner may change the key while it is read: the change's recheck then
        # writes the newer value, and a status patched here on no version would put the older
        # one back for good. So an import decides in the token's lock and writes on the version read.
        reconcile_now(kind, dict(body), memo, logger)
        return

    if kind.has_roles and spec.service_account_name and not minted:
        quota = room_problem(memo, namespace, spec.service_account_name, name, body.metadata.get("creationTimestamp"))
        if quota:
            _wait_for_room(out, quota)
            return

    token_hash = None
    if imported:
        adopted = adopt_imported(kind, spec, body, out, memo)
        credential, token_hash = adopted if adopted is not None else (None, None)
    else:
        credential = _minted(kind, spec, body, out, memo, already_minted=bool(minted))
    if credential is None:
        return  # the problem is in status already
    token, token_id, issued_at, secret_name = credential
    issued = datetime.fromisoformat(issued_at.replace("Z", "+00:00"))
    expires_at = spec.expires_at(issued)
    fields = dict(
        phase="Active",
        imported=True if imported else None,
        tokenId=token_id,
        tokenHash=token_hash or hash_token(token),
        secretName=secret_name,
        issuedAt=issued_at,
        expiresAt=rfc3339(expires_at) if expires_at else None,
    )
    if kind.has_roles:
        fields["effectiveRoles"] = plan.effective_roles
        fields["accountUID"] = status.get("accountUID") or _account_uid(spec, namespace, memo)
    disabled = _account_disabled(kind, spec, namespace, memo)
    if disabled:
        out.ready(False, reasons.ACCOUNT_DISABLED,
                  f"ServiceAccount {spec.service_account_name!r} is disabled: the token fails "
                  "verification until the account is enabled", **fields)
    else:
        where = f"in Secret {secret_name!r}" if secret_name else "imported (hash only)"
        out.ready(True, reasons.MINTED, f"token {token_id} is {where}", **fields)


def _minted(kind: Kind, spec, body: kopf.Body, out: TokenStatus, memo, *, already_minted: bool) -> Credential | None:
    """The token in our Secret, minting it (once) when there is none.

    A token never minted is created optimistically (one request); only a conflict,
    which a crash between "Secret written" and "status written" leaves, costs a read.
    """
    name, namespace = body.metadata.name, body.metadata.namespace
    owner = kube_secrets.Owner(kind.resource.kind, name, body.metadata.uid)
    secret_name = spec.secret_name or name
    if not already_minted:
        expires_at = spec.expires_at(out.now)
        if expires_at is not None and expires_at <= out.now:
            out.problem(policies.Problem(
                reasons.EXPIRATION_IN_PAST, f"spec.expiration {spec.expiration} is in the past; set a future date"),
                "Failed")
            return None
        started = time.perf_counter()
        issued_at = rfc3339(out.now)
        token, token_id = mint_token(kind.prefix_of(memo.settings)), new_token_id()
        if write_secret(kind, spec, body, memo, secret_name, token, token_id, issued_at, hash_token(token)):
            MINTED.labels(kind=kind.resource.kind).inc()
            elapsed = time.perf_counter() - started
            for histogram in (MINT_DURATION, MINT_SECONDS):
                histogram.labels(kind=kind.resource.kind).observe(elapsed)
            events.info(body, reason=reasons.MINTED, message=f"token {token_id} minted into Secret {secret_name!r}")
            return token, token_id, issued_at, secret_name
        # The Secret exists: ours from before a crash (reuse it), or someone else's.

    with kube_errors_to_kopf():
        found = kube_secrets.read_token_secret(memo.core, namespace, secret_name, owner)
    if found is not None and not found.owned:
        out.problem(secret_conflict(kind, secret_name), "Failed")
        return None
    if found is not None:
        return _accepted(kind, body, out, memo, found)
    # Minted before, and the Secret is gone: deleted by hand.
    events.warn(body, reason=reasons.SECRET_RECREATED,
                message=f"Secret {secret_name!r} was deleted; its token is revoked and a new "
                        "token was minted into a new Secret")
    issued_at = rfc3339(out.now)
    token, token_id = mint_token(kind.prefix_of(memo.settings)), new_token_id()
    if not write_secret(kind, spec, body, memo, secret_name, token, token_id, issued_at, hash_token(token)):
        raise kopf.TemporaryError(f"Secret {secret_name!r} appeared meanwhile; looking again", delay=1)
    MINTED.labels(kind=kind.resource.kind).inc()
    return token, token_id, issued_at, secret_name


def _accepted(kind: Kind, body: kopf.Body, out: TokenStatus, memo, found: kube_secrets.TokenSecret) -> Credential:
    """The credential in our own Secret, if tokenwarden wrote it for this token; otherwise a
    new token minted into the Secret in place of the value written by hand."""
    status = body.status
    origin = policies.secret_value_origin(hash_or_none(found.token), hash_or_none(found.previous), found.recorded_hash,
                                          status.get("tokenHash"))
    if origin == policies.ROTATION_UNRECORDED:
        # A rotation wrote its successor, not yet its status: the status's token stays, and
        # the rotation (its timer or its request, seen again) records the successor.
        return found.previous, status.get("tokenId") or found.token_id, status.get("issuedAt"), found.name
    if origin == policies.TAMPERED:
        _unchanged_since(kind, body, memo)
        # A replacement never outlives the token it replaces.
        issued_at = status.get("issuedAt") or rfc3339(out.now)
        token, token_id = replace_tampered_token(kind, body, memo, found, issued_at)
        out.patch.status.update(previousTokenHash=None, previousValidUntil=None)
        return token, token_id, issued_at, found.name
    # The status's times and id, when it has them: the Secret's annotations are not the authority.
    issued_at = status.get("issuedAt") or found.issued_at or rfc3339(out.now)
    return found.token, status.get("tokenId") or found.token_id or new_token_id(), issued_at, found.name


def _unchanged_since(kind: Kind, body: kopf.Body, memo) -> None:
    """Before a Secret is written on a status read before it: the status is still that one
    (a writer elsewhere may have rotated the token in between, and the Secret read since would
    not look like the status read before it). Otherwise kopf.TemporaryError: decide again."""
    with kube_errors_to_kopf(delay=1):
        current = objects.get_object(memo.custom, kind.resource, body.metadata.namespace, body.metadata.name)
    if current is None or current["metadata"].get("resourceVersion") != body.metadata.get("resourceVersion"):
        raise kopf.TemporaryError("the token changed while its Secret was read; looking again", delay=1)


def room_problem(memo, namespace: str, account: str, name: str, created: str | None) -> policies.Problem | None:
    """Why the token ``name`` of ``account`` may not mint yet for a quota: its account is
    beyond the namespace's account quota, or the account has no room for another token."""
    for entry in memo.indexes.accounts.get((namespace, account)):
        over = account_quota(memo, namespace, account, entry.created or None)
        if over:
            return policies.waiting_for_account_quota(account, over)
    return policies.token_quota_problem(memo.indexes.tokens.get((namespace, account)), name, created,
                                        memo.settings.quotas.max_tokens_per_account, account)


def _wait_for_room(out: TokenStatus, problem: policies.Problem) -> None:
    """Pending until room appears (handlers._quota looks again then); warned once, not on each look."""
    before = condition(out.body.status.get("conditions"), "Ready") or {}
    out.ready(False, problem.reason, problem.message, phase="Pending")
    if before.get("reason") != problem.reason:
        events.warn(out.body, reason=problem.reason, message=problem.message)


def _edit_not_applied(out: TokenStatus, problem: policies.Problem) -> None:
    """An edit the model refuses that got past admission (no webhook answering, failure policy
    Ignore) leaves a minted token as it was: Active, verifying, its observedGeneration the
    last spec applied. Only the Ready condition says what to fix."""
    conditions = out.body.status.get("conditions")
    before = condition(conditions, "Ready") or {}
    message = (f"the spec edit (generation {out.generation}) was not applied: {problem.message}. The token "
               "stays Active and keeps verifying as before; correct the spec, or undo the edit")
    out.patch.status["conditions"] = set_condition(conditions, "Ready", False, problem.reason, message,
                                                   generation=out.generation, now=out.now)
    if (before.get("reason"), before.get("observedGeneration")) != (problem.reason, out.generation):
        events.warn(out.body, reason=problem.reason, message=message)


def _account_uid(spec, namespace: str, memo, created_by: str | None = None) -> str | None:
    """The uid of the token's account (None: it names none, or none is indexed); with
    ``created_by``, only an account created no later than that."""
    if not spec.service_account_name:
        return None
    for entry in memo.indexes.accounts.get((namespace, spec.service_account_name)):
        created, minted = policies.parse_time(entry.created), policies.parse_time(created_by)
        if created_by is None or (created is not None and minted is not None and created <= minted):
            return entry.uid or None
    return None


def _account_disabled(kind: Kind, spec, namespace: str, memo) -> bool:
    if not kind.has_roles or not spec.service_account_name:
        return False
    return any(a.disabled for a in memo.indexes.accounts.get((namespace, spec.service_account_name)))


def reconcile_now(kind: Kind, token: dict, memo, logger) -> None:
    """Reconcile a token, read again in its lock (a writer that held the lock meanwhile may
    have changed it), and write its status on the version read: if anyone wrote the token
    since, kopf.TemporaryError, and the caller tries again."""
    meta = token["metadata"]
    with memo.token_locks(meta["namespace"], meta["name"]):
        with kube_errors_to_kopf(delay=1):
            token = objects.get_object(memo.custom, kind.resource, meta["namespace"], meta["name"])
        if token is None or token["metadata"]["uid"] != meta["uid"]:
            return
        meta = token["metadata"]
        patch = kopf.Patch()
        try:
            reconcile_token(kind, kopf.Body(token), patch, memo, logger, fresh=True)
        finally:  # a wait (kopf.TemporaryError) still records why, as kopf does with a handler's patch
            if patch.get("status"):
                with kube_errors_to_kopf(delay=1):
                    objects.patch_status(memo.custom, kind.resource, meta["namespace"], meta["name"],
                                         dict(patch["status"]), resource_version=meta.get("resourceVersion"))


def _register(kind: Kind) -> None:
    plural = kind.resource.plural

    @kopf.on.create(GROUP, VERSION, plural, id="mint")
    @kopf.on.update(GROUP, VERSION, plural, field="spec", id="update")
    def mint(body, patch, memo, logger, **_):
        reconcile_token(kind, body, patch, memo, logger)

    @kopf.on.resume(GROUP, VERSION, plural, id="resume")
    async def resume(body, patch, memo, logger, **_):
        # A restart resumes every token: most are minted and unchanged, decided without a
        # call, so without a thread (a pool queue of thousands would hold back new tokens' mints).
        try:
            reconcile_token(kind, body, patch, memo, logger, resuming=True, blocking=False)
        except CallsTheAPI:
            await asyncio.to_thread(reconcile_token, kind, body, patch, memo, logger, resuming=True)


for _kind in (SERVICE_TOKEN, INGESTION_KEY):
    _register(_kind)
