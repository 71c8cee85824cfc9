"""Token Secrets whose controlling token no longer exists are removed; no other Secret is."""
from __future__ import annotations

import asyncio

import kopf
from kubernetes import client
from kubernetes.client.rest import ApiException

from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.handlers._listings import until_current
from tokenwarden.handlers._token_kinds import KINDS_BY_NAME, controller_ref
from tokenwarden.kube import objects
from tokenwarden.kube._resources import GROUP, MANAGED_BY, MANAGED_BY_VALUE, TOKEN_LABEL


def token_owner(body) -> dict | None:
    """The Secret's controlling ownerReference when it names a token or key of ours; None for
    any other Secret, labelled or not (mirroring tools copy labels, never our owner reference)."""
    ref = controller_ref(body)
    if ref and ref.get("kind") in KINDS_BY_NAME and (ref.get("apiVersion") or "").startswith(f"{GROUP}/") \
            and ref.get("uid"):
        return ref
    return None


def _orphaned(type, body, memo, **_) -> bool:
    ref = token_owner(body)
    return (type != "DELETED" and not body.metadata.get("deletionTimestamp")
            and ref is not None and ref["uid"] not in memo.indexes.owners)


@kopf.on.event("", "v1", "secrets", labels={MANAGED_BY: MANAGED_BY_VALUE, TOKEN_LABEL: kopf.PRESENT},
               when=_orphaned)
async def collect_orphaned_secret(type, body, name, namespace, memo, logger, **_):
    """A token Secret whose controlling token no longer exists is removed (also without a GC).

    The filter is one index lookup: a Secret whose token exists costs no call at all. The
    index may be behind (a standby replica that just took over has seen no events while it
    stood by), so the token is read before anything is deleted: only a token that is gone,
    or replaced by a namesake, leaves an orphan. At start, Secrets are listed alongside their
    tokens: the filter is asked again once every kind is listed (before, the token of every
    Secret would look gone, and be read)."""
    await until_current(memo, namespace)
    if not _orphaned(type, body, memo):
        return
    await asyncio.to_thread(_delete_orphan, body, name, namespace, memo, logger)


def _delete_orphan(body, name, namespace, memo, logger) -> None:
    ref = token_owner(body)
    if ref is None:
        return
    kind = KINDS_BY_NAME[ref["kind"]]
    with kube_errors_to_kopf():
        owner = objects.get_object(memo.custom, kind.resource, namespace, ref.get("name", ""))
        if owner is not None and owner["metadata"]["uid"] == ref["uid"]:
            memo.indexes.observe(kind.resource.kind, owner)
            return
        try:
            memo.core.delete_namespaced_secret(name, namespace,
                                               body=client.V1DeleteOptions(preconditions=client.V1Preconditions(
                                                   uid=body.metadata.uid)))
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise
    logger.info(f"deleted orphaned token Secret {namespace}/{name}: its token no longer exists")
