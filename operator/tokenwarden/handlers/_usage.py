"""Last use: copy what the authenticator recorded in each namespace's TokenUsage into
the credentials' status.lastUsedAt.

The authenticator may write TokenUsage objects only, which authorise nothing; this is
the one place a TokenUsage changes a credential, and it only moves lastUsedAt forward.
"""
from __future__ import annotations

import kopf

from tokenwarden import clock, policies
from tokenwarden.conditions import rfc3339
from tokenwarden.kube import ApiPermanentError, ApiTransientError, objects, usage
from tokenwarden.kube._resources import (
    GROUP,
    INGESTION_KEYS,
    SERVICE_ACCOUNTS,
    SERVICE_TOKENS,
    TOKEN_USAGES,
    USAGE_OBJECT,
    VERSION,
)

RESOURCES = {r.kind: r for r in (SERVICE_TOKENS, INGESTION_KEYS, SERVICE_ACCOUNTS)}
LIST_ABOVE = 20  # more changed entries of one kind than this: one listing instead of a read each


def _credentials(memo, kind: str, namespace: str, names: list[str]) -> dict[str, dict]:
    resource = RESOURCES[kind]
    if len(names) > LIST_ABOVE:
        wanted = set(names)
        return {body["metadata"]["name"]: body for body in objects.iter_objects(memo.custom, resource, namespace)
                if body["metadata"]["name"] in wanted}
    found = {}
    for name in names:
        body = objects.get_object(memo.custom, resource, namespace, name)
        if body is not None:
            found[name] = body
    return found


@kopf.on.event(GROUP, VERSION, TOKEN_USAGES.plural, id="last-use")
def copy_last_use(type, body, name, namespace, memo, logger, **_) -> None:
    if type == "DELETED" or name != USAGE_OBJECT:
        return
    copied = memo.last_uses  # (kind, namespace, name) → the entry last handled
    changed: dict[str, dict[str, str]] = {}
    for (kind, credential), when in usage.usage_entries(body).items():
        if copied.get((kind, namespace, credential)) != when:
            changed.setdefault(kind, {})[credential] = when
    now = clock.now()
    for kind, entries in changed.items():
        try:
            credentials = _credentials(memo, kind, namespace, sorted(entries))
        except (ApiTransientError, ApiPermanentError) as exc:
            logger.warning(f"could not read the {kind}s of TokenUsage entries: {exc}")
            continue
        for credential, when in entries.items():
            found = credentials.get(credential)  # a missing credential is ignored
            moment = None
            if found is not None and not found["metadata"].get("deletionTimestamp"):
                moment = policies.last_use_update(when, (found.get("status") or {}).get("lastUsedAt"),
                                                  found["metadata"].get("creationTimestamp"), now)
            try:
                if moment is not None:
                    objects.patch_status(memo.custom, RESOURCES[kind], namespace, credential,
                                         {"lastUsedAt": rfc3339(moment)})
            except (ApiTransientError, ApiPermanentError) as exc:
                logger.warning(f"could not write lastUsedAt of {kind} {credential}: {exc}")
                continue
            copied[(kind, namespace, credential)] = when
