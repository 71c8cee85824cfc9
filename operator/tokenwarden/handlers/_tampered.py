"""A token's Secret holding a value tokenwarden did not write: refused, and a new token minted."""
from __future__ import annotations

import base64

import kopf

from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.handlers._listings import until_current
from tokenwarden.handlers._settle import request_settle
from tokenwarden.handlers._token_kinds import KINDS_BY_NAME, TERMINAL, controller_ref, past
from tokenwarden.kube import objects
from tokenwarden.kube import secrets as kube_secrets
from tokenwarden.kube._resources import MANAGED_BY, MANAGED_BY_VALUE, TOKEN_HASH_ANNOTATION
from tokenwarden.tokens import hash_token


def _secret_value_unknown(type, body, namespace, memo, **_) -> bool:
    """A token Secret whose value is neither its token's (the hashes index) nor the one
    tokenwarden recorded as it wrote it. No API call: every Secret tokenwarden wrote passes
    here for free, a value written by hand (or an imported key's copy) costs one read."""
    ref = controller_ref(body)
    if type == "DELETED" or body.metadata.get("deletionTimestamp") or not ref \
            or ref.get("kind") not in KINDS_BY_NAME:
        return False
    value_hash = _value_hash(body)
    if value_hash is None:
        return True
    if (namespace, ref.get("name")) in memo.indexes.hashes.get(value_hash):
        return False
    return value_hash != (body.metadata.annotations or {}).get(TOKEN_HASH_ANNOTATION)


def _value_hash(body) -> str | None:
    """The hash of a Secret's token; None when it has none, or none that is text."""
    raw = (body.get("data") or {}).get(kube_secrets.TOKEN_KEY)
    try:
        return hash_token(base64.b64decode(raw).decode()) if raw is not None else None
    except ValueError:
        return None


@kopf.on.event("", "v1", "secrets", labels={MANAGED_BY: MANAGED_BY_VALUE}, when=_secret_value_unknown)
async def secret_value_changed(type, body, namespace, memo, logger, **_):
    """A token's Secret holds a value tokenwarden did not write (changed by hand): the value is
    refused, and a new token is minted into the Secret at once rather than at the next resync.
    At start, Secrets are listed alongside their tokens: the filter is asked again once every
    kind is listed (the hashes index knows every token's value then)."""
    await until_current(memo, namespace)
    if not _secret_value_unknown(type, body, namespace, memo):
        return
    memo.work.submit(("secret", namespace, body.metadata.name), _check_secret_value, body, namespace, memo, logger)


def _check_secret_value(body, namespace, memo, logger) -> None:
    ref = controller_ref(body)
    kind = KINDS_BY_NAME[ref["kind"]]
    with kube_errors_to_kopf():
        token = objects.get_object(memo.custom, kind.resource, namespace, ref["name"])
    status = (token or {}).get("status") or {}
    if (token is None or token["metadata"]["uid"] != ref.get("uid") or token["metadata"].get("deletionTimestamp")
            or ((token.get("spec") or {}).get("import") and kind.has_roles)
            or status.get("phase") in TERMINAL or not status.get("tokenHash")
            or status.get("secretName") != body.metadata.name or past(status.get("expiresAt"))):
        return  # imports follow their source; a token not minted yet is its minting handler's
    value_hash = _value_hash(body)
    if value_hash is not None and value_hash == status["tokenHash"]:
        # Minted before hashes were recorded on Secrets: record it, so this costs no read again.
        with kube_errors_to_kopf():
            kube_secrets.record_token_hash(memo.core, namespace, body.metadata.name, value_hash)
        return
    logger.warning(f"Secret {namespace}/{body.metadata.name} holds a value tokenwarden did not write "
                   f"for {kind.resource.kind} {ref['name']}: minting a new token")
    request_settle(memo, kind, namespace, ref["name"])
