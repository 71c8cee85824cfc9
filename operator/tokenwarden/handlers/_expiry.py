"""Expiry and garbage collection: one sleeping daemon per token, woken at its instant.

No polling: each Active token with an ``expiresAt`` has a daemon that sleeps until
then, deletes the Secret and sets ``phase: Expired``; each Expired token has one
that deletes it after the retention (``expiredRetention``; 0 keeps it).
"""
from __future__ import annotations

import asyncio

import kopf

from tokenwarden import reasons
from tokenwarden import clock, policies
from tokenwarden.conditions import set_condition
from tokenwarden.handlers import _events as events
from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.handlers._metrics import COLLECTED, EXPIRED, EXPIRY_LAG
from tokenwarden.handlers._token_kinds import INGESTION_KEY, SERVICE_TOKEN, TERMINAL, Kind
from tokenwarden.kube import ApiConflict, objects
from tokenwarden.kube import secrets as kube_secrets
from tokenwarden.kube._resources import GROUP, VERSION


RECHECK = 300.0


def _active_with_expiry(status, **_) -> bool:
    return status.get("phase") == "Active" and bool(status.get("expiresAt"))


def _expired(status, **_) -> bool:
    return status.get("phase") == "Expired"


def expire_token(kind: Kind, namespace: str, name: str, memo, logger) -> bool:
    """Mark the token Expired if it is due (policies.expiry_due), then delete its Secret (in
    that order, so nothing that watches Secrets mistakes the deletion for a Secret deleted by
    hand). Decided in the token's lock on a fresh read, and written on the version read, as a
    rotation is: a rotation that came first (here, or in another replica) moved expiresAt, and
    the write that would have expired its successor fails with a conflict and is decided
    again. True when the token is expired (now, or already)."""
    with memo.token_locks(namespace, name), kube_errors_to_kopf(delay=1):
        for _ in range(3):
            token = objects.get_object(memo.custom, kind.resource, namespace, name)
            if token is None or token["metadata"].get("deletionTimestamp"):
                return True  # nothing left to expire
            status = token.get("status") or {}
            if status.get("phase") in TERMINAL:
                return True
            now = clock.now()
            message = policies.expiry_due(phase=status.get("phase"),
                                          expires_at=policies.parse_time(status.get("expiresAt")), now=now)
            if message is None:
                return False
            conditions = set_condition(status.get("conditions"), "Ready", False, policies.EXPIRED, message,
                                       generation=token["metadata"].get("generation"), now=now)
            try:
                objects.patch_status(memo.custom, kind.resource, namespace, name,
                                     {"phase": policies.EXPIRED, "conditions": conditions},
                                     resource_version=token["metadata"]["resourceVersion"])
            except ApiConflict:
                continue  # written in between (a rotation, a last use): decided again on what it wrote
            break
        else:
            raise kopf.TemporaryError(f"{kind.resource.kind} {namespace}/{name} kept changing; expiring it again",
                                      delay=1)
        owner = kube_secrets.Owner(kind.resource.kind, name, token["metadata"]["uid"])
        kube_secrets.delete_token_secret(memo.core, namespace, status.get("secretName") or name, owner)
    EXPIRED.labels(kind=kind.resource.kind).inc()
    lag = (clock.now() - policies.parse_time(status["expiresAt"])).total_seconds()
    EXPIRY_LAG.labels(kind=kind.resource.kind).observe(max(0.0, lag))
    events.info(token, reason=policies.EXPIRED, message=message)
    logger.info(f"{kind.resource.kind} {status.get('tokenId')} expired")
    return True


def _register(kind: Kind) -> None:
    plural = kind.resource.plural

    @kopf.daemon(GROUP, VERSION, plural, id="expire", when=_active_with_expiry,
                 cancellation_timeout=10.0)
    async def expire(body, stopped, memo, logger, **_):
        # ``body`` is kopf's live view: a changed spec.expiration moves expiresAt,
        # so look again at least every RECHECK seconds.
        while not stopped:
            expires_at = policies.parse_time(body.status.get("expiresAt"))
            if expires_at is None:
                return
            remaining = policies.seconds_until(expires_at, clock.now())
            if remaining <= 0:
                if await asyncio.to_thread(expire_token, kind, body.metadata.namespace, body.metadata.name,
                                           memo, logger):
                    return
                # Not due on a fresh read (a rotation moved expiresAt): wait for the live body to
                # show it, then wait for the new instant.
                await stopped.wait(1.0)
                continue
            await stopped.wait(min(remaining, RECHECK))

    @kopf.daemon(GROUP, VERSION, plural, id="collect", when=_expired, cancellation_timeout=10.0)
    async def collect(body, stopped, memo, logger, **_):
        expires_at = policies.parse_time(body.status.get("expiresAt")) or clock.now()
        due = policies.deletion_due(expires_at, memo.settings.expired_retention)
        if due is None:
            return
        await stopped.wait(policies.seconds_until(due, clock.now()))
        if stopped:
            return
        with kube_errors_to_kopf(delay=1):
            await asyncio.to_thread(objects.delete_object, memo.custom, kind.resource,
                                    body.metadata.namespace, body.metadata.name)
        COLLECTED.labels(kind=kind.resource.kind).inc()
        logger.info(f"deleted expired {kind.resource.kind} {body.status.get('tokenId')} after retention")


for _kind in (SERVICE_TOKEN, INGESTION_KEY):
    _register(_kind)
