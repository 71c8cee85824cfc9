"""Imported keys follow their source Secret and the cluster's import key.

Neither kind of Secret reaches kopf's watch (it selects token Secrets only): import sources
are followed by their label tokenwarden.io/importable=true, the import key's Secret by its
name (handlers/_watches.py). A source without the label is read by name when its token is
reconciled, never watched."""
from __future__ import annotations

import kopf

from tokenwarden import reasons
from tokenwarden.handlers import _events as events
from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.handlers._import_key import follow_key_secret
from tokenwarden.handlers._mint import reconcile_now
from tokenwarden.handlers._token_kinds import SERVICE_TOKEN, TERMINAL
from tokenwarden.kube import objects
from tokenwarden.kube import secrets as kube_secrets
from tokenwarden.kube._resources import SERVICE_TOKENS


def source_changed(type: str, namespace: str, name: str, memo, logger) -> None:
    """An import source changed, went, or left the watch: its importers are looked at again.
    One index lookup: a Secret nobody imports from costs no call at all."""
    importers = memo.indexes.imports.get((namespace, name))
    if importers:  # retried until it holds
        memo.work.submit(("import-source", namespace, name), _recheck_importers, type, namespace, name,
                         importers, memo, logger)


def key_secret_changed(type: str, body: dict | None, memo, logger) -> None:
    """The import key's Secret changed or went (run by the work queue): when the key in use
    changed, every imported key is re-hashed with the new one."""
    if follow_key_secret(type, kopf.Body(body) if body is not None else None, memo, logger):
        for (namespace, source), importers in memo.indexes.imports.items():
            memo.work.submit(("import-source", namespace, source), _recheck_importers, "MODIFIED", namespace,
                             source, importers, memo, logger)


def _recheck_importers(type, namespace, source, importers, memo, logger) -> None:
    if type == "DELETED":
        # Under a label selector, a label removed by hand arrives as DELETED too.
        with kube_errors_to_kopf():
            if kube_secrets.read_secret_object(memo.core, namespace, source) is not None:
                type = "MODIFIED"
    for name in importers:
        with kube_errors_to_kopf():
            token = objects.get_object(memo.custom, SERVICE_TOKENS, namespace, name)
        if token is None or token["metadata"].get("deletionTimestamp") or \
                (token.get("status") or {}).get("phase") in TERMINAL:
            continue
        if type == "DELETED":
            events.warn(token, reason=reasons.IMPORT_SOURCE_DELETED,
                        message=f"the Secret this key was imported from is gone; the key stays valid until "
                                f"this token is deleted or expires (kubectl delete servicetoken {name} revokes it)")
            continue
        reconcile_now(SERVICE_TOKEN, token, memo, logger)
