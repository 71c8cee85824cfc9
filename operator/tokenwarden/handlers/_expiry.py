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
from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.handlers._metrics import COLLECTED, EXPIRED, EXPIRY_LAG
from tokenwarden.handlers._token_kinds import INGESTION_KEY, SERVICE_TOKEN, Kind
from tokenwarden.kube import objects
from tokenwarden.kube import secrets as kube_secrets
from tokenwarden.kube._resources import GROUP, VERSION


RECHECK = 300.0


def _active_with_expiry(status, **_) -> bool:
    return status.get("phase") == "Active" and bool(status.get("expiresAt"))


def _expired(status, **_) -> bool:
    return status.get("phase") == "Expired"


def expire_token(kind: Kind, body: kopf.Body, memo, logger) -> None:
    """Mark the token Expired, then delete its Secret (in that order, so nothing that
    watches Secrets mistakes the deletion for a Secret deleted by hand)."""
    name, namespace = body.metadata.name, body.metadata.namespace
    status = body.status
    message = f"the token expired at {status['expiresAt']}; its Secret was deleted"
    conditions = set_condition(status.get("conditions"), "Ready", False, reasons.EXPIRED, message,
                               generation=body.metadata.get("generation"), now=clock.now())
    with kube_errors_to_kopf(delay=1):
        objects.patch_status(memo.custom, kind.resource, namespace, name,
                             {"phase": "Expired", "conditions": conditions})
    owner = kube_secrets.Owner(kind.resource.kind, name, body.metadata.uid)
    with kube_errors_to_kopf(delay=1):
        kube_secrets.delete_token_secret(memo.core, namespace, status.get("secretName") or name, owner)
    EXPIRED.labels(kind=kind.resource.kind).inc()
    lag = (clock.now() - policies.parse_time(status["expiresAt"])).total_seconds()
    EXPIRY_LAG.labels(kind=kind.resource.kind).observe(max(0.0, lag))
    kopf.info(body, reason=reasons.EXPIRED, message=message)
    logger.info(f"{kind.resource.kind} {status.get('tokenId')} expired")


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
                await asyncio.to_thread(expire_token, kind, body, memo, logger)
                return
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
