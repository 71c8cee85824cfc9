"""Imported keys follow their source Secret and the cluster's import key."""
from __future__ import annotations

import asyncio

import kopf

from tokenwarden import reasons
from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.handlers._import_key import follow_key_secret, is_key_secret
from tokenwarden.handlers._mint import reconcile_now
from tokenwarden.handlers._token_kinds import SERVICE_TOKEN, TERMINAL
from tokenwarden.kube import objects
from tokenwarden.kube._resources import SERVICE_TOKENS


@kopf.on.event("", "v1", "secrets",
               when=lambda name, namespace, memo, **_: (namespace, name) in memo.indexes.imports)
async def import_source_changed(type, body, namespace, memo, logger, **_):
    """An imported key's source Secret changed or went: look at its importers again.

    The filter is one index lookup, so a Secret nobody imports from costs no call at all.
    """
    importers = memo.indexes.imports.get((namespace, body.metadata.name))
    if importers:  # retried until it holds: kopf never retries an event handler
        memo.work.submit(("import-source", namespace, body.metadata.name), _recheck_importers, type, namespace,
                         importers, memo, logger)


@kopf.on.event("", "v1", "secrets", when=lambda name, namespace, memo, **_: is_key_secret(name, namespace, memo))
async def import_key_changed(type, body, memo, logger, **_):
    """The import key's Secret changed: every imported key is re-hashed with the new key."""
    if await asyncio.to_thread(follow_key_secret, type, body, memo, logger):
        for (namespace, source), importers in memo.indexes.imports.items():
            memo.work.submit(("import-source", namespace, source), _recheck_importers, "MODIFIED", namespace,
                             importers, memo, logger)


def _recheck_importers(type, namespace, importers, memo, logger) -> None:
    for name in importers:
        with kube_errors_to_kopf():
            token = objects.get_object(memo.custom, SERVICE_TOKENS, namespace, name)
        if token is None or token["metadata"].get("deletionTimestamp") or \
                (token.get("status") or {}).get("phase") in TERMINAL:
            continue
        if type == "DELETED":
            kopf.warn(token, reason=reasons.IMPORT_SOURCE_DELETED,
                      message=f"the Secret this key was imported from is gone; the key stays valid until "
                              f"this token is deleted or expires (kubectl delete servicetoken {name} revokes it)")
            continue
        reconcile_now(SERVICE_TOKEN, token, memo, logger)
