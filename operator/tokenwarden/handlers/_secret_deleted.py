"""A token's Secret deleted by hand: its token is revoked and a new one minted."""
from __future__ import annotations

import kopf

from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.handlers._mint import reconcile_now
from tokenwarden.handlers._token_kinds import KINDS_BY_NAME, controller_ref, past
from tokenwarden.kube import objects
from tokenwarden.kube._resources import MANAGED_BY, MANAGED_BY_VALUE


@kopf.on.event("", "v1", "secrets", labels={MANAGED_BY: MANAGED_BY_VALUE},
               when=lambda type, **_: type == "DELETED")
def secret_deleted(body, namespace, memo, logger, **_):
    """A token's Secret deleted by hand: its token is revoked and a new one is minted.

    The old plaintext is gone with the Secret, so keeping its hash valid would leave a
    credential nobody can rotate; agents get a fresh Secret under the same name.
    """
    ref = controller_ref(body)
    kind = KINDS_BY_NAME.get(ref.get("kind")) if ref else None
    if kind is None:
        return
    with kube_errors_to_kopf():
        token = objects.get_object(memo.custom, kind.resource, namespace, ref["name"])
    if (token is None or token["metadata"]["uid"] != ref.get("uid")
            or token["metadata"].get("deletionTimestamp")
            or (token.get("status") or {}).get("phase") != "Active"
            or token["status"].get("secretName") != body.metadata.name
            or past(token["status"].get("expiresAt"))):
        return
    reconcile_now(kind, token, memo, logger)
