"""Imported keys follow their source Secret and the cluster's import key.

Neither kind of Secret reaches kopf's watch (it selects token Secrets only): import sources
are followed by their label tokenwarden.io/importable=true, the import key's Secret by its
name (handlers/_watches.py). A source without the label is read by name when its token is
reconciled, never watched. A source deleted while no watch ran is found missing from the
next listing and read by name (:func:`sources_listed`): it is reported as if the watch had
seen it go."""
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


def sources_listed(scope: str | None, listed: set, skip: set, memo, logger) -> None:
    """A listing of the labelled sources in ``scope`` (a namespace, or None: all) is complete.
    A source that tokens import and that the listing lacks may have gone while no watch ran
    (the operator down or not leading, a watch away): its deletion was never seen. Or it was
    never labelled, and is read by name only: absence from the listing proves nothing, so each
    is read by name, and what is gone is handled as deleted. ``listed``: the keys the listing
    held or dropped (a dropped one's deletion is announced already); ``skip``: Secrets
    followed by name, whose own watch says what their absence means (the bootstrap Secret)."""
    for (namespace, source), importers in memo.indexes.imports.items():
        key = (namespace, source)
        if (scope is None or namespace == scope) and key not in listed and key not in skip:
            memo.work.submit(("import-source", namespace, source), _recheck_if_gone, namespace, source,
                             importers, memo, logger)


def _recheck_if_gone(namespace, source, importers, memo, logger) -> None:
    with kube_errors_to_kopf():
        if kube_secrets.read_secret_object(memo.core, namespace, source) is not None:
            return  # there, unlabelled: read by name when its token is reconciled
    _recheck_importers("DELETED", namespace, source, importers, memo, logger, confirmed=True)


def _recheck_importers(type, namespace, source, importers, memo, logger, confirmed: bool = False) -> None:
    if type == "DELETED" and not confirmed:
        # Under a label selector, a label removed by hand arrives as DELETED too.
        with kube_errors_to_kopf():
            if kube_secrets.read_secret_object(memo.core, namespace, source) is not None:
                type = "MODIFIED"
    for name in importers:
        with kube_errors_to_kopf():
            token = objects.get_object(memo.custom, SERVICE_TOKENS, namespace, name)
        status = (token or {}).get("status") or {}
        if token is None or token["metadata"].get("deletionTimestamp") or status.get("phase") in TERMINAL:
            continue
        if type == "DELETED":
            if not status.get("tokenHash"):
                continue  # nothing imported yet, so nothing stays valid: the token waits for its source
            events.warn(token, reason=reasons.IMPORT_SOURCE_DELETED,
                        message=f"the Secret this key was imported from is gone; the key stays valid until "
                                f"this token is deleted or expires (kubectl delete servicetoken {name} revokes it)")
            continue
        reconcile_now(SERVICE_TOKEN, token, memo, logger)
