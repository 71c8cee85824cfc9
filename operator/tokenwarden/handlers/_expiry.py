"""Expiry and garbage collection, run when the scheduler says (handlers/_schedule.py).

At an Active token's ``expiresAt`` its Secret is deleted and it turns ``phase: Expired``;
an Expired token is deleted after the retention (``expiredRetention``; 0 keeps it).
"""
from __future__ import annotations

import kopf

from tokenwarden import reasons
from tokenwarden import clock, policies
from tokenwarden.conditions import set_condition
from tokenwarden.handlers import _events as events
from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.handlers._metrics import COLLECTED, EXPIRED, EXPIRY_LAG
from tokenwarden.handlers._token_kinds import TERMINAL, Kind
from tokenwarden.kube import ApiConflict, objects
from tokenwarden.kube import secrets as kube_secrets


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


def collect_token(kind: Kind, namespace: str, name: str, memo, logger) -> None:
    """Delete the token, its retention over (the scheduler's timer), if it is still Expired on
    a fresh read: that very object (by its uid), never a namesake made since."""
    with kube_errors_to_kopf(delay=1):
        token = objects.get_object(memo.custom, kind.resource, namespace, name)
        if token is None or token["metadata"].get("deletionTimestamp"):
            return
        status = token.get("status") or {}
        if status.get("phase") != policies.EXPIRED:
            return
        try:
            objects.delete_object(memo.custom, kind.resource, namespace, name, uid=token["metadata"]["uid"])
        except ApiConflict:
            return  # a namesake made since: not the token that expired
    COLLECTED.labels(kind=kind.resource.kind).inc()
    logger.info(f"deleted expired {kind.resource.kind} {status.get('tokenId')} after retention")
