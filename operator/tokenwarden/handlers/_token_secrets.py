"""Writing a token into its Secret: created once, never over a Secret that is not the token's."""
from __future__ import annotations

import kopf

from tokenwarden import reasons
from tokenwarden import policies
from tokenwarden.handlers import _events as events
from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.handlers._metrics import MINTED
from tokenwarden.handlers._token_kinds import Kind
from tokenwarden.kube import secrets as kube_secrets
from tokenwarden.tokens import hash_token, mint_token, new_token_id

Credential = tuple  # (token, token_id, issued_at, secret_name or None)


def secret_conflict(kind: Kind, secret_name: str) -> policies.Problem:
    return policies.Problem(
        reasons.SECRET_CONFLICT,
        f"Secret {secret_name!r} exists and is not owned by this {kind.resource.kind}; "
        "tokenwarden never overwrites or adopts a Secret: delete it or set spec.secretName "
        "to another name")


def hash_or_none(value: str | None) -> str | None:
    """The hash of a value read from a Secret, None for none."""
    return hash_token(value) if value is not None else None


def replace_tampered_token(kind: Kind, body: kopf.Body, memo, found: kube_secrets.TokenSecret,
                           issued_at: str) -> tuple[str, str]:
    """Mint a new token into a Secret whose value tokenwarden did not write (``found``, as read:
    written only if unchanged since); the caller puts its hash in status, which revokes the old
    token and the value written by hand alike."""
    token, token_id = mint_token(kind.prefix_of(memo.settings)), new_token_id()
    with kube_errors_to_kopf():
        kube_secrets.update_token_secret(memo.core, body.metadata.namespace, found.name, token, issued_at,
                                         token_hash=hash_token(token), token_id=token_id, drop_previous=True,
                                         resource_version=found.resource_version)
    MINTED.labels(kind=kind.resource.kind).inc()
    events.warn(body, reason=reasons.SECRET_TAMPERED,
                message=f"Secret {found.name!r} held a value tokenwarden did not write for this "
                        f"{kind.resource.kind}; it is refused, the token before it is revoked, and token "
                        f"{token_id} was minted into the Secret")
    return token, token_id


def write_secret(kind: Kind, spec, body: kopf.Body, memo, secret_name: str, token: str, token_id: str,
                  issued_at: str, token_hash: str | None = None) -> bool:
    """Create the token's Secret; False when a Secret of that name already exists."""
    owner = kube_secrets.Owner(kind.resource.kind, body.metadata.name, body.metadata.uid)
    template = spec.secret_template
    with kube_errors_to_kopf():
        try:
            kube_secrets.create_token_secret(
                memo.core, body.metadata.namespace, secret_name, owner, token=token, token_id=token_id,
                issued_at=issued_at,
                labels=dict(template.labels) if template and template.labels else None,
                annotations=dict(template.annotations) if template and template.annotations else None,
                token_hash=token_hash,
            )
        except kube_secrets.SecretExists:
            return False
    return True

