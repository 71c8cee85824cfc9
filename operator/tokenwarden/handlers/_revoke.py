"""Revocation on deletion: the token's Secret goes with it."""
from __future__ import annotations

import kopf

from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.handlers._token_kinds import INGESTION_KEY, SERVICE_TOKEN, Kind
from tokenwarden.kube import secrets as kube_secrets
from tokenwarden.kube._resources import GROUP, VERSION


def revoke_token(kind: Kind, body: kopf.Body, memo, logger) -> None:
    """Delete the token's Secret (ours only): the finalizer's job, GC or not."""
    name, namespace = body.metadata.name, body.metadata.namespace
    secret_name = body.status.get("secretName") or body.spec.get("secretName") or name
    owner = kube_secrets.Owner(kind.resource.kind, name, body.metadata.uid)
    with kube_errors_to_kopf():
        gone = kube_secrets.delete_token_secret(memo.core, namespace, secret_name, owner)
    if gone:
        logger.info(f"revoked {kind.resource.kind} {body.status.get('tokenId')}: Secret deleted")


def _register(kind: Kind) -> None:
    @kopf.on.delete(GROUP, VERSION, kind.resource.plural, id="revoke")
    def revoke(body, memo, logger, **_):
        revoke_token(kind, body, memo, logger)


for _kind in (SERVICE_TOKEN, INGESTION_KEY):
    _register(_kind)
