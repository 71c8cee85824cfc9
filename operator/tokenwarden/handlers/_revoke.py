"""Deletion needs nobody: a deleted token is gone at once, and its Secret goes with it.

Tokens carry no finalizer. Each token Secret has the token as its controlling owner, so
Kubernetes' garbage collector deletes the Secret once the token is gone, whether or not an
operator runs, and a namespace with tokens in it is deleted without waiting on one. When the
operator sees the deletion it deletes the Secret at once rather than when the collector
gets to it.

kopf puts a finalizer on every object a daemon or a timer serves, so that it can stop them
before the object goes. Tokens have none (their timers are the operator's own scheduler's,
handlers/_schedule.py, which drops them on the DELETED event), and the accounts' quota timer
asks for none. Objects that an older version finalized are released by kopf itself: the
finalizer keeps its name in the settings, and kopf removes a finalizer of that name when no
handler asks for one.
"""
from __future__ import annotations

import dataclasses

import kopf

from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.handlers._token_kinds import INGESTION_KEY, SERVICE_TOKEN, Kind
from tokenwarden.kube import secrets as kube_secrets
from tokenwarden.kube._resources import GROUP, VERSION

FINALIZER = "tokenwarden.io/finalizer"  # put by older versions; removed by kopf on sight


def revoke_token(kind: Kind, body: kopf.Body, memo, logger) -> None:
    """Delete the token's Secret (ours only: its controlling owner is this token's uid)."""
    name, namespace = body.metadata.name, body.metadata.namespace
    secret_name = body.status.get("secretName") or body.spec.get("secretName") or name
    owner = kube_secrets.Owner(kind.resource.kind, name, body.metadata.uid)
    with kube_errors_to_kopf():
        gone = kube_secrets.delete_token_secret(memo.core, namespace, secret_name, owner)
    if gone:
        logger.info(f"revoked {kind.resource.kind} {body.status.get('tokenId')}: Secret deleted")


def _register(kind: Kind) -> None:
    @kopf.on.event(GROUP, VERSION, kind.resource.plural, id="revoke",
                   when=lambda type, **_: type == "DELETED")
    def revoke(body, memo, logger, **_):
        # An event handler is not retried: should this fail, the garbage collector deletes the Secret.
        revoke_token(kind, body, memo, logger)


for _kind in (SERVICE_TOKEN, INGESTION_KEY):
    _register(_kind)


def without_finalizers(registry: kopf.OperatorRegistry) -> None:
    """Have kopf put no finalizer on objects for their daemons and timers (call once every
    handler is registered). kopf has no option for it, so those handlers are rewritten in place;
    tests/unit/test_finalizers.py fails if a kopf upgrade changes what this relies on."""
    spawning = registry._spawning._handlers
    spawning[:] = [dataclasses.replace(h, requires_finalizer=False) for h in spawning]
