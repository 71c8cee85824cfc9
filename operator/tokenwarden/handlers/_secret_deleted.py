"""A token's Secret deleted by hand: its token is revoked and a new one minted.

kopf watches token Secrets through a label selector, so a Secret whose label was removed by
hand leaves the watch as DELETED although it still exists. Every DELETED is confirmed by
reading the Secret by name before anything is revoked: a Secret still there, the same one,
has its labels put back (it is back in sight, and nothing is revoked)."""
from __future__ import annotations

import kopf

from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.handlers._settle import settle_secret_owner
from tokenwarden.handlers._token_kinds import KINDS_BY_NAME, controller_ref
from tokenwarden.kube import secrets as kube_secrets
from tokenwarden.kube._resources import MANAGED_BY, MANAGED_BY_VALUE


@kopf.on.event("", "v1", "secrets", labels={MANAGED_BY: MANAGED_BY_VALUE},
               when=lambda type, **_: type == "DELETED")
def secret_deleted(body, namespace, memo, logger, **_):
    """A token's Secret gone from the watch: deleted, or its label removed.

    A deleted Secret's plaintext is gone with it, so keeping its hash valid would leave a
    credential nobody can rotate; agents get a fresh Secret under the same name. Whether
    the token is re-minted is decided when it is settled (policies.remint), on its state
    then: a token deleted, expired or revoked meanwhile is not.
    """
    memo.work.submit(("secret-gone", namespace, body.metadata.name), confirm_deleted, body, namespace, memo, logger)


def confirm_deleted(body, namespace: str, memo, logger) -> None:
    """Settle the Secret's token if the Secret is really gone (or replaced by a namesake);
    put its labels back if it is still there."""
    ref = controller_ref(body)
    kind = KINDS_BY_NAME.get(ref.get("kind")) if ref else None
    if kind is None:
        return  # not a token's Secret (the import key's is followed by name: handlers/_watches.py)
    name = body.metadata.name
    with kube_errors_to_kopf():
        found = kube_secrets.read_secret_object(memo.core, namespace, name)
    if found is None or found["metadata"]["uid"] != body.metadata.uid:
        settle_secret_owner(body, namespace, memo)
        return
    with kube_errors_to_kopf():
        kube_secrets.restore_token_labels(memo.core, namespace, name,
                                          kube_secrets.Owner(kind.resource.kind, ref["name"], ref.get("uid", "")),
                                          found["metadata"]["resourceVersion"])
    logger.warning(f"Secret {namespace}/{name} lost the label {MANAGED_BY}={MANAGED_BY_VALUE}, which keeps it "
                   f"in the operator's sight; the labels of {kind.resource.kind} {ref['name']}'s Secret are put back")
