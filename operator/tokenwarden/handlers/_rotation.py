"""Rotation: a successor minted before expiry (spec.rotation) or on demand
(annotation tokenwarden.io/rotate), written into the same Secret with the old
token kept as ``token.previous`` for the overlap, and each restart target rolled
once per rotation."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import kopf
from pydantic import ValidationError

from tokenwarden import policies
from tokenwarden.conditions import rfc3339, set_condition
from tokenwarden.durations import parse_duration
from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.handlers._metrics import MINTED
from tokenwarden.handlers._token_kinds import INGESTION_KEY, SERVICE_TOKEN, Kind
from tokenwarden.handlers._token_secrets import hash_or_none, replace_tampered_token
from tokenwarden.kube import ApiNotFound, ApiPermanentError, objects
from tokenwarden.kube import secrets as kube_secrets
from tokenwarden.kube._resources import GROUP, VERSION
from tokenwarden.kube._workloads import rollout_restart
from tokenwarden.tokens import hash_token, mint_token

ROTATE_ANNOTATION = "tokenwarden.io/rotate"
RECHECK = 300.0


def _now() -> datetime:
    return datetime.now(timezone.utc)


def rotate_token(kind: Kind, body: kopf.Body, memo, logger, *, request: str | None = None) -> bool:
    """Rotate once; True when the token changed. Safe to repeat after a crash: the status's
    token, found as the Secret's previous one, is kept and a new successor minted."""
    name, namespace, status = body.metadata.name, body.metadata.namespace, body.status
    try:
        spec = kind.spec_model.model_validate(dict(body.spec))
    except ValidationError:
        return False
    if kind.has_roles and spec.import_ is not None:
        kopf.warn(body, reason="RotationUnsupported",
                  message="an imported key is rotated by its owner: replace the value in the source Secret")
        if request is not None:  # acted on: do not warn again for the same request
            with kube_errors_to_kopf():
                objects.patch_status(memo.custom, kind.resource, namespace, name, {"rotationRequest": request})
        return False
    secret_name = status.get("secretName") or name
    owner = kube_secrets.Owner(kind.resource.kind, name, body.metadata.uid)
    with kube_errors_to_kopf():
        found = kube_secrets.read_token_secret(memo.core, namespace, secret_name, owner)
    if found is None or not found.owned:
        return False  # the minting reconciler repairs a missing Secret
    now = _now()
    issued_at = rfc3339(now)
    # The token kept for the overlap is the one the status names, found as "token", or as
    # "token.previous" when a crash came between a rotation's Secret and its status. The
    # successor is always minted here: a value found in the Secret never becomes the token.
    kept = policies.rotation_predecessor(hash_or_none(found.token), hash_or_none(found.previous), status.get("tokenHash"))
    token_id = status.get("tokenId")
    if kept is None:
        old = None
        new, token_id = replace_tampered_token(kind, body, memo, secret_name, issued_at)
    else:
        old, new = (found.token if kept == "token" else found.previous), mint_token(kind.prefix_of(memo.settings))
        with kube_errors_to_kopf():
            kube_secrets.update_token_secret(memo.core, namespace, secret_name, new, issued_at, previous=old,
                                             token_hash=hash_token(new))
        MINTED.labels(kind=kind.resource.kind).inc()
    old_expires = policies.parse_time(status.get("expiresAt"))
    until = policies.previous_valid_until(now, memo.settings.rotation_overlap, old_expires)
    expires_at = spec.expires_at(policies.parse_time(issued_at))
    message = (f"token {status.get('tokenId')} rotated; the previous one stays valid until {rfc3339(until)}"
               if old else f"token {status.get('tokenId')} rotated to {token_id}; the previous one is revoked")
    update = {
        "phase": "Active",
        "tokenId": token_id,
        "tokenHash": hash_token(new),
        "previousTokenHash": hash_token(old) if old else None,
        "previousValidUntil": rfc3339(until) if old else None,
        "issuedAt": issued_at,
        "expiresAt": rfc3339(expires_at) if expires_at else None,
        "rotatedAt": rfc3339(now),
        "conditions": set_condition(status.get("conditions"), "Ready", True, "Rotated", message,
                                    generation=body.metadata.get("generation"), now=now),
    }
    if request is not None:
        update["rotationRequest"] = request
    with kube_errors_to_kopf():
        objects.patch_status(memo.custom, kind.resource, namespace, name, update)
    kopf.info(body, reason="Rotated", message=message)
    _restart_targets(spec, body, memo, logger, rfc3339(now))
    return True


def _restart_targets(spec, body: kopf.Body, memo, logger, when: str) -> None:
    targets = spec.rotation.restart_targets if spec.rotation and spec.rotation.restart_targets else []
    for target in targets:
        try:
            rollout_restart(memo.core.api_client, body.metadata.namespace, target.kind, target.name, when)
            logger.info(f"rollout restart of {target.kind} {target.name} after rotation")
        except ApiNotFound:
            kopf.warn(body, reason="RestartTargetNotFound",
                      message=f"{target.kind} {target.name!r} does not exist; nothing restarted for it")
        except ApiPermanentError as exc:
            kopf.warn(body, reason="RestartFailed", message=f"{target.kind} {target.name!r}: {exc}")


def _rotating(spec, status, **_) -> bool:
    return status.get("phase") == "Active" and bool(spec.get("rotation")) and bool(status.get("expiresAt"))


def _register(kind: Kind) -> None:
    plural = kind.resource.plural

    @kopf.daemon(GROUP, VERSION, plural, id="rotate", when=_rotating, cancellation_timeout=10.0)
    async def rotate_before_expiry(body, stopped, memo, logger, **_):
        while not stopped:
            expires_at = policies.parse_time(body.status.get("expiresAt"))
            renew_before = parse_duration(body.spec["rotation"]["renewBefore"])
            remaining = policies.seconds_until(policies.renew_at(expires_at, renew_before), _now())
            if remaining > 0:
                await stopped.wait(min(remaining, RECHECK))
                continue
            seen = body.status.get("tokenHash")
            await asyncio.to_thread(rotate_token, kind, body, memo, logger)
            # Wait for our own status write to reach the live body before deciding again.
            for _ in range(50):
                if stopped or body.status.get("tokenHash") != seen:
                    break
                await stopped.wait(0.1)

    @kopf.on.event(GROUP, VERSION, plural, id="rotate-on-request",
                   when=lambda body, **_: policies.rotation_requested(
                       body.metadata.annotations.get(ROTATE_ANNOTATION), body.status.get("rotationRequest"))
                   and body.status.get("phase") == "Active")
    def rotate_on_request(body, memo, logger, **_):
        request = body.metadata.annotations.get(ROTATE_ANNOTATION)
        rotate_token(kind, body, memo, logger, request=request)


for _kind in (SERVICE_TOKEN, INGESTION_KEY):
    _register(_kind)
