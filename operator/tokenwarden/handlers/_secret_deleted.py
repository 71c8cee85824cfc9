"""A token's Secret deleted by hand: its token is revoked and a new one minted."""
from __future__ import annotations

import kopf

from tokenwarden.handlers._settle import settle_secret_owner
from tokenwarden.kube._resources import MANAGED_BY, MANAGED_BY_VALUE


@kopf.on.event("", "v1", "secrets", labels={MANAGED_BY: MANAGED_BY_VALUE},
               when=lambda type, **_: type == "DELETED")
def secret_deleted(body, namespace, memo, **_):
    """A token's Secret deleted by hand: its token is revoked and a new one is minted.

    The old plaintext is gone with the Secret, so keeping its hash valid would leave a
    credential nobody can rotate; agents get a fresh Secret under the same name. Whether
    the token is re-minted is decided when it is settled (policies.remint), on its state
    then: a token deleted, expired or revoked meanwhile is not.
    """
    settle_secret_owner(body, namespace, memo)
