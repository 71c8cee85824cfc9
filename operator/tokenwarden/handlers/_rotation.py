"""Rotation: a successor minted before expiry (spec.rotation) or on demand
(annotation tokenwarden.io/rotate), written into the same Secret with the old
token kept as ``token.previous`` for the overlap, and each restart target rolled
once per rotation. A leaked token (annotation tokenwarden.io/leaked) is rotated at
once with no overlap."""
from __future__ import annotations

import contextlib

import kopf
from pydantic import ValidationError

from tokenwarden import reasons
from tokenwarden import clock, policies
from tokenwarden.api import RestartTarget
from tokenwarden.conditions import rfc3339, set_condition
from tokenwarden.durations import parse_duration
from tokenwarden.handlers import _events as events
from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.handlers._leaks import LEAK_ROTATIONS
from tokenwarden.handlers._metrics import CREDENTIALS, MINTED
from tokenwarden.handlers._token_kinds import Kind, spec_to_settle
from tokenwarden.handlers._token_secrets import hash_or_none, replace_tampered_token
from tokenwarden.kube import ApiConflict, ApiNotFound, ApiPermanentError, ApiTransientError, objects
from tokenwarden.kube import secrets as kube_secrets
from tokenwarden.kube._workloads import rollout_restart
from tokenwarden.tokens import hash_token, mint_token

ROTATE_ANNOTATION = policies.ROTATE_ANNOTATION
# The condition a rotation request is answered on when it cannot be acted on.
REQUEST_CONDITION = "RotationRequest"


def rotate_token(kind: Kind, namespace: str, name: str, memo, logger) -> bool:
    """Rotate the token if its state calls for it now (policies.rotation_due: a request not acted
    on, or renewBefore reached); True when it changed. Decided on a fresh read of the Secret and
    then the token, in the token's lock; both writes carry the version read, so a conflict raises
    (kopf.TemporaryError) and the retry decides again. Safe to repeat after a crash: the status's
    token, found as the Secret's previous one, is kept and a new successor minted."""
    with memo.token_locks(namespace, name), kube_errors_to_kopf(delay=1):
        try:
            return _rotate(kind, namespace, name, memo, logger)
        except ApiConflict:
            raise  # another writer came first: decided again on the retry, not a failure
        except (ApiTransientError, ApiPermanentError):
            CREDENTIALS.count("rotations", namespace, kind.resource.kind, name, "failed")
            raise


def _rotate(kind: Kind, namespace: str, name: str, memo, logger) -> bool:
    token = objects.get_object(memo.custom, kind.resource, namespace, name)
    if token is None or token["metadata"].get("deletionTimestamp"):
        return False
    status = token.get("status") or {}
    owner = kube_secrets.Owner(kind.resource.kind, name, token["metadata"]["uid"])
    found = kube_secrets.read_token_secret(memo.core, namespace, status.get("secretName") or name, owner)
    token = objects.get_object(memo.custom, kind.resource, namespace, name)  # after the Secret: see _settle
    if token is None:
        return False
    body = kopf.Body(token)
    status, rv = body.status, token["metadata"]["resourceVersion"]
    spec, whole = spec_to_settle(kind, token.get("spec"))
    if spec is None:
        return False
    request = body.metadata.annotations.get(ROTATE_ANNOTATION)
    now = clock.now()
    action = policies.rotation_due(
        phase=status.get("phase"), expires_at=policies.parse_time(status.get("expiresAt")),
        renew_before=parse_duration(spec.rotation.renew_before) if spec.rotation else None,
        request=request, handled_request=status.get("rotationRequest"),
        imported=kind.has_roles and spec.import_ is not None, now=now,
        leaked=policies.leak_pending(body.metadata.annotations.get(policies.LEAKED_ANNOTATION),
                                     status.get("tokenHash"), status.get("previousTokenHash")))
    if action is None:
        return False
    leaked = action.reason == policies.TOKEN_LEAKED
    # The value acted on, or its hash when it is longer than the status holds: the answer to a
    # request is always a write the status accepts, never one refused on every retry.
    answered = {"rotationRequest": policies.rotation_request_mark(request)} \
        if action.reason != policies.RENEW_BEFORE_EXPIRY and request else {}
    if action.reason in (policies.ROTATION_UNSUPPORTED, policies.ROTATION_REQUEST_TOO_LONG):
        # Answered once, on the condition and an event; nothing is minted.
        conditions = set_condition(status.get("conditions"), REQUEST_CONDITION, False, action.reason,
                                   action.message, generation=body.metadata.get("generation"), now=now)
        objects.patch_status(memo.custom, kind.resource, namespace, name, {**answered, "conditions": conditions},
                             resource_version=rv)
        events.warn(body, reason=action.reason, message=action.message)
        CREDENTIALS.count("rotations", namespace, kind.resource.kind, name,
                          "unsupported" if action.reason == policies.ROTATION_UNSUPPORTED else "refused")
        return False
    if found is None or not found.owned:
        return False  # the minting reconciler repairs a missing Secret
    # The token kept for the overlap is the one the status names, found as "token", or as
    # "token.previous" when a crash came between a rotation's Secret and its status. The
    # successor is always minted here: a value found in the Secret never becomes the token.
    kept = policies.rotation_predecessor(hash_or_none(found.token), hash_or_none(found.previous),
                                         status.get("tokenHash"))
    token_id = status.get("tokenId")
    issued_at = rfc3339(now)
    if kept is None:
        old = None
        new, token_id = replace_tampered_token(kind, body, memo, found, issued_at)
    elif leaked:
        # No overlap: the leaked value, and any previous one beside it, leave the Secret now.
        old, new = None, mint_token(kind.prefix_of(memo.settings))
        kube_secrets.update_token_secret(memo.core, namespace, found.name, new, issued_at, drop_previous=True,
                                         token_hash=hash_token(new), resource_version=found.resource_version)
        MINTED.labels(kind=kind.resource.kind).inc()
    else:
        old, new = (found.token if kept == "token" else found.previous), mint_token(kind.prefix_of(memo.settings))
        kube_secrets.update_token_secret(memo.core, namespace, found.name, new, issued_at, previous=old,
                                         token_hash=hash_token(new), resource_version=found.resource_version)
        MINTED.labels(kind=kind.resource.kind).inc()
    old_expires = policies.parse_time(status.get("expiresAt"))
    until = policies.previous_valid_until(now, memo.settings.rotation_overlap, old_expires)
    expires_at = spec.expires_at(policies.parse_time(issued_at)) if whole else \
        _same_lifetime(status, policies.parse_time(issued_at))
    if leaked:
        message = (f"token {token_id} leaked: the leaked value is refused, and a successor was minted into "
                   f"Secret {found.name!r} with no overlap")
    elif old:
        message = f"token {status.get('tokenId')} rotated; the previous one stays valid until {rfc3339(until)}"
    else:
        message = f"token {status.get('tokenId')} rotated to {token_id}; the previous one is revoked"
    update = {
        "phase": "Active",
        "tokenId": token_id,
        "tokenHash": hash_token(new),
        "previousTokenHash": hash_token(old) if old else None,
        "previousValidUntil": rfc3339(until) if old else None,
        "issuedAt": issued_at,
        "expiresAt": rfc3339(expires_at) if expires_at else None,
        "rotatedAt": rfc3339(now),
        **answered,
    }
    if whole:  # else Ready goes on saying which edit was not applied, and why
        # A request answered before without a rotation is answered by this one.
        kept = [c for c in status.get("conditions") or [] if c.get("type") != REQUEST_CONDITION]
        update["conditions"] = set_condition(kept, "Ready", True, reasons.ROTATED, message,
                                             generation=body.metadata.get("generation"), now=now)
    _record(kind, namespace, name, update, rv, status.get("tokenHash"), memo)
    CREDENTIALS.count("rotations", namespace, kind.resource.kind, name, "leaked" if leaked else "rotated")
    if leaked:
        LEAK_ROTATIONS.labels(kind=kind.resource.kind).inc()
        events.warn(body, reason=policies.TOKEN_LEAKED, message=message)
    else:
        events.info(body, reason=reasons.ROTATED, message=message)
    _restart_targets(_targets(spec, token.get("spec")), body, memo, logger, rfc3339(now))
    return True


def _same_lifetime(status: dict, issued_at):
    """The expiry of a successor minted while an edit is not applied: the lifetime the
    token was minted with, which is the last spec applied's."""
    issued, expires = policies.parse_time(status.get("issuedAt")), policies.parse_time(status.get("expiresAt"))
    return issued_at + (expires - issued) if issued is not None and expires is not None else None


def _targets(spec, raw: dict | None) -> list:
    """The restart targets, also of a spec whose rotation is an edit not applied: each one
    that is itself valid."""
    if spec.rotation:
        return spec.rotation.restart_targets or []
    targets = []
    for target in ((raw or {}).get("rotation") or {}).get("restartTargets") or []:
        with contextlib.suppress(ValidationError):
            targets.append(RestartTarget.model_validate(target))
    return targets


def _record(kind: Kind, namespace: str, name: str, update: dict, rv: str, based_on: str | None, memo) -> None:
    """Write the rotation's status on the version it was decided on. A conflict with a write
    that left the token as it was (kopf's bookkeeping, a last use) is written again on the new
    version: the successor, already in the Secret and perhaps read by an agent, is the one
    recorded, and the Secret is never asked which one that is. A conflict with an expiry or a
    revocation is not: a terminal phase is never turned back to Active."""
    for _ in range(3):
        try:
            objects.patch_status(memo.custom, kind.resource, namespace, name, update, resource_version=rv)
            return
        except ApiConflict:
            token = objects.get_object(memo.custom, kind.resource, namespace, name)
            status = (token or {}).get("status") or {}
            if token is None or not policies.rotation_recordable(phase=status.get("phase"),
                                                                 token_hash=status.get("tokenHash"),
                                                                 based_on=based_on):
                raise
            rv = token["metadata"]["resourceVersion"]
    objects.patch_status(memo.custom, kind.resource, namespace, name, update, resource_version=rv)


def _restart_targets(targets: list, body: kopf.Body, memo, logger, when: str) -> None:
    credential = (body.metadata.namespace, body.get("kind") or "", body.metadata.name)
    for target in targets:
        try:
            rollout_restart(memo.core.api_client, body.metadata.namespace, target.kind, target.name, when)
            logger.info(f"rollout restart of {target.kind} {target.name} after rotation")
            CREDENTIALS.count("restarts", *credential, "restarted")
        except ApiNotFound:
            events.warn(body, reason=reasons.RESTART_TARGET_NOT_FOUND,
                        message=f"{target.kind} {target.name!r} does not exist; nothing restarted for it")
            CREDENTIALS.count("restarts", *credential, "not_found")
        except (ApiPermanentError, ApiTransientError) as exc:
            # The rotation is recorded and will not run again: a retry would not restart either.
            events.warn(body, reason=reasons.RESTART_FAILED, message=f"{target.kind} {target.name!r}: {exc}")
            CREDENTIALS.count("restarts", *credential, "failed")
