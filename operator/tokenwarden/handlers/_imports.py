"""Imported keys: an existing key adopted from the user's Secret, kept as an HMAC."""
from __future__ import annotations

import kopf

from tokenwarden import reasons
from tokenwarden import policies
from tokenwarden.conditions import condition, rfc3339
from tokenwarden.handlers import _events as events
from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.handlers._token_kinds import WAIT_DELAY, Kind, TokenStatus
from tokenwarden.handlers._token_secrets import Credential, secret_conflict, write_secret
from tokenwarden.kube import secrets as kube_secrets
from tokenwarden.tokens import hash_token, new_token_id


def adopt_imported(kind: Kind, spec, body: kopf.Body, out: TokenStatus, memo) -> tuple[Credential, str] | None:
    """An existing key adopted from the user's Secret, and the hash to keep: only that HMAC
    is kept (and a copy, when spec.secretName asks for one). The source Secret is never
    written or deleted, and it is read only when it carries the importable label.

    When the source's value changes, the new value replaces the old one (re-hashed,
    issued anew): its owner rotated it, and agents read the source.
    """
    name, namespace, status = body.metadata.name, body.metadata.namespace, body.status
    ref = spec.import_.secret_ref
    problem = policies.source_namespace_problem(namespace, ref.namespace)
    if problem:
        out.problem(problem, "Failed")
        return None
    with kube_errors_to_kopf():
        source = kube_secrets.read_source_secret(memo.core, namespace, ref.name)
    if source is None:
        out.ready(False, reasons.IMPORT_SOURCE_NOT_FOUND,
                  f"Secret {ref.name!r} to import from does not exist in namespace {namespace!r}; "
                  "create it (the key is imported as soon as it exists)", phase="Pending")
        raise kopf.TemporaryError(f"Secret {ref.name!r} not found", delay=WAIT_DELAY)
    importable = policies.is_importable(source.labels) or _bootstrap_source(namespace, name, ref.name, memo)
    not_importable = policies.source_not_importable_problem(ref.name, namespace)
    if not importable and not status.get("tokenHash"):
        # Waits for the label: a change to the Secret brings the token back here.
        if (condition(status.get("conditions"), "Ready") or {}).get("reason") != not_importable.reason:
            events.warn(body, reason=not_importable.reason, message=not_importable.message)
        out.ready(False, not_importable.reason, not_importable.message, phase="Pending")
        return None
    value = policies.adopted_key(source.data.get(ref.key), secret=ref.name, key=ref.key, keys=source.data,
                                 minimum=memo.settings.import_min_length)
    if isinstance(value, policies.Problem):
        out.problem(value, "Failed")
        return None
    key = memo.import_keys.current(memo)
    if isinstance(key, policies.Problem):
        out.ready(False, key.reason, key.message, phase="Pending")
        raise kopf.TemporaryError(key.message, delay=WAIT_DELAY)
    decision = policies.imported_hash(value, status.get("tokenHash"), key, memo.import_keys.older,
                                      key_is_new=memo.import_keys.predates(status.get("issuedAt")))
    if not importable:
        # Imported before the Secret lost its label (or before labels were asked for): the key
        # adopted then stays valid, and its hash is brought up to date, but a new value is not taken.
        if decision.change == "changed":
            events.warn(body, reason=not_importable.reason,
                        message=f"the key in Secret {ref.name!r} changed, but the Secret does not carry the label "
                                f"{policies.IMPORTABLE_LABEL}; the key imported before stays valid until the "
                                f"label is added: {policies.fix_label_command(ref.name, namespace)}")
            return None
        events.warn(body, reason=not_importable.reason,
                    message=f"Secret {ref.name!r} does not carry the label {policies.IMPORTABLE_LABEL}; the key "
                            "imported from it stays valid, but a new value in it is not taken until the label is "
                            f"added: {policies.fix_label_command(ref.name, namespace)}")
    holder = memo.indexes.claim_hash(decision.token_hash, body.metadata.uid, (namespace, name),
                                     also_held_as=hash_token(value))
    if holder is not None:
        out.problem(policies.duplicate_import_problem(holder), "Failed")
        return None
    issued_at = status.get("issuedAt") or rfc3339(out.now)
    token_id = status.get("tokenId") or new_token_id()
    if decision.change == "changed":
        issued_at = rfc3339(out.now)
        events.info(body, reason=reasons.IMPORTED_KEY_CHANGED,
                    message=f"the key in Secret {ref.name!r} changed; the new value replaces the old one")
    elif decision.change == "new":
        events.info(body, reason=reasons.IMPORTED, message=f"key from Secret {ref.name!r} imported as token {token_id}")
    elif decision.change == "rehashed":
        events.info(body, reason=reasons.IMPORT_REHASHED,
                    message="the key's stored hash is now an HMAC under the cluster's import key")
    if spec.secret_name is None:
        return (value, token_id, issued_at, None), decision.token_hash
    owner = kube_secrets.Owner(kind.resource.kind, name, body.metadata.uid)
    with kube_errors_to_kopf():
        copy = kube_secrets.read_token_secret(memo.core, namespace, spec.secret_name, owner)
    if copy is not None and not copy.owned:
        out.problem(secret_conflict(kind, spec.secret_name), "Failed")
        return None
    if copy is None:
        if not write_secret(kind, spec, body, memo, spec.secret_name, value, token_id, issued_at):
            raise kopf.TemporaryError(f"Secret {spec.secret_name!r} appeared meanwhile; looking again", delay=1)
    elif copy.token != value:
        with kube_errors_to_kopf():
            kube_secrets.update_token_secret(memo.core, namespace, spec.secret_name, value, issued_at,
                                             resource_version=copy.resource_version)
    return (value, token_id, issued_at, spec.secret_name), decision.token_hash


def _bootstrap_source(namespace: str, name: str, secret: str, memo) -> bool:
    """The operator's own bootstrap token reads the bootstrap Secret the cluster admin
    configured, labelled or not (the chart's existingSecret need not carry the label)."""
    config = memo.settings.bootstrap
    return bool(config.namespace) and (namespace, name, secret) == (config.namespace, config.token_name,
                                                                    config.secret_name)
