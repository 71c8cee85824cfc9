"""Mint ServiceTokens and IngestionAPIKeys into Secrets; revoke them on deletion.

The handler is level-triggered and idempotent: whatever crashed before, it finds
the Secret it wrote (by owner uid) and reuses its token, so a token is minted
once per object. Only the hash reaches the status.

The status, not the Secret, says which value is the token: a value in the Secret is
taken only when it hashes to status.tokenHash, or, when a crash left no hash in
status, to the hash tokenwarden recorded on the Secret as it wrote it. A value written
by hand is refused, and a new token is minted into the Secret.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import kopf
from kubernetes import client
from kubernetes.client.rest import ApiException
from pydantic import ValidationError

from tokenwarden import policies
from tokenwarden.api import IngestionAPIKeySpec, ServiceTokenSpec, describe_validation_error
from tokenwarden.conditions import condition, rfc3339, set_condition
from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.handlers._import_key import follow_key_secret, is_key_secret
from tokenwarden.handlers._metrics import MINT_SECONDS, MINTED
from tokenwarden.kube import objects
from tokenwarden.kube import secrets as kube_secrets
from tokenwarden.kube._resources import (
    GROUP,
    INGESTION_KEYS,
    MANAGED_BY,
    MANAGED_BY_VALUE,
    SERVICE_TOKENS,
    TOKEN_HASH_ANNOTATION,
    TOKEN_LABEL,
    VERSION,
    Resource,
)
from tokenwarden.tokens import hash_token, mint_token, new_token_id

WAIT_DELAY = 5.0  # seconds before a token waiting on its account or binding looks again
UNSETTLED_AFTER = 60.0  # seconds a token may sit without a status, untouched, before it is looked at again
UNSETTLED_SWEEP = 15.0  # seconds between looks
UNSETTLED_LIMIT = 100  # tokens looked at per sweep: kopf's own queue does the bulk of the work
TERMINAL = ("Expired", "Revoked")


@dataclass(frozen=True)
class Kind:
    resource: Resource
    spec_model: type
    prefix_of: object  # Settings -> prefix
    has_roles: bool


SERVICE_TOKEN = Kind(SERVICE_TOKENS, ServiceTokenSpec, lambda s: s.prefixes.service_token, True)
INGESTION_KEY = Kind(INGESTION_KEYS, IngestionAPIKeySpec, lambda s: s.prefixes.ingestion_key, False)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class _Status:
    """Collects the status fields and the Ready condition to patch."""

    def __init__(self, body: kopf.Body, patch: kopf.Patch, now: datetime) -> None:
        self.body, self.patch, self.now = body, patch, now
        self.generation = body.metadata.get("generation")

    def ready(self, ok: bool, reason: str, message: str, **fields) -> None:
        conditions = set_condition(self.body.status.get("conditions"), "Ready", ok, reason, message,
                                   generation=self.generation, now=self.now)
        self.patch.status.update(fields, conditions=conditions, observedGeneration=self.generation)

    def problem(self, problem: policies.Problem, phase: str) -> None:
        self.ready(False, problem.reason, problem.message, phase=phase)
        kopf.warn(self.body, reason=problem.reason, message=problem.message)


def _roles_for(kind: Kind, spec, namespace: str, memo):
    if not kind.has_roles:
        return policies.RolePlan(["ingest"])
    account = spec.service_account_name
    return policies.plan_roles(
        spec.roles,
        memo.settings.roles,
        account=account,
        account_exists=account is not None and (namespace, account) in memo.indexes.accounts,
        bindings=memo.indexes.bindings.get((namespace, account)) if account else [],
    )


def reconcile_token(kind: Kind, body: kopf.Body, patch: kopf.Patch, memo, logger,
                    resuming: bool = False) -> None:
    name, namespace, uid = body.metadata.name, body.metadata.namespace, body.metadata.uid
    status = body.status
    out = _Status(body, patch, _now())
    if status.get("phase") in TERMINAL:
        return
    try:
        spec = kind.spec_model.model_validate(dict(body.spec))
    except ValidationError as exc:
        out.problem(policies.Problem("InvalidSpec", describe_validation_error(exc)), "Failed")
        return

    plan = _roles_for(kind, spec, namespace, memo)
    if isinstance(plan, policies.Problem):
        if plan.waiting:
            out.ready(False, plan.reason, plan.message, phase="Pending")
            raise kopf.TemporaryError(plan.message, delay=WAIT_DELAY)
        out.problem(plan, "Failed")
        return

    imported = kind.has_roles and spec.import_ is not None
    minted = status.get("phase") == "Active" and status.get("tokenHash")
    if minted and _past(status.get("expiresAt")):
        return  # the expiry daemon takes it from here; never re-mint an expired token
    if resuming and minted and status.get("observedGeneration") == out.generation and \
            not (imported and policies.import_hash_outdated(
                status.get("tokenHash"), memo.import_keys.predates(status.get("issuedAt")))):
        # Already minted and nothing changed while we were away: no Secret read, no re-mint.
        if kind.has_roles and status.get("effectiveRoles") != plan.effective_roles:
            patch.status["effectiveRoles"] = plan.effective_roles
        return

    if kind.has_roles and spec.service_account_name and not minted:
        others = [t for t in memo.indexes.tokens.get((namespace, spec.service_account_name))
                  if t.name != name]
        quota = policies.token_quota_problem(len(others), memo.settings.quotas.max_tokens_per_account,
                                             spec.service_account_name)
        if quota:
            out.problem(quota, "Failed")
            return

    token_hash = None
    if imported:
        adopted = _imported(kind, spec, body, out, memo)
        credential, token_hash = adopted if adopted is not None else (None, None)
    else:
        credential = _minted(kind, spec, body, out, memo, already_minted=bool(minted))
    if credential is None:
        return  # the problem is in status already
    token, token_id, issued_at, secret_name = credential
    issued = datetime.fromisoformat(issued_at.replace("Z", "+00:00"))
    expires_at = spec.expires_at(issued)
    fields = dict(
        phase="Active",
        imported=True if imported else None,
        tokenId=token_id,
        tokenHash=token_hash or hash_token(token),
        secretName=secret_name,
        issuedAt=issued_at,
        expiresAt=rfc3339(expires_at) if expires_at else None,
    )
    if kind.has_roles:
        fields["effectiveRoles"] = plan.effective_roles
    disabled = _account_disabled(kind, spec, namespace, memo)
    if disabled:
        out.ready(False, "AccountDisabled",
                  f"ServiceAccount {spec.service_account_name!r} is disabled: the token fails "
                  "verification until the account is enabled", **fields)
    else:
        where = f"in Secret {secret_name!r}" if secret_name else "imported (hash only)"
        out.ready(True, "Minted", f"token {token_id} is {where}", **fields)


Credential = tuple  # (token, token_id, issued_at, secret_name or None)


def _secret_conflict(kind: Kind, secret_name: str) -> policies.Problem:
    return policies.Problem(
        "SecretConflict",
        f"Secret {secret_name!r} exists and is not owned by this {kind.resource.kind}; "
        "tokenwarden never overwrites or adopts a Secret: delete it or set spec.secretName "
        "to another name")


def _minted(kind: Kind, spec, body: kopf.Body, out: _Status, memo, *, already_minted: bool) -> Credential | None:
    """The token in our Secret, minting it (once) when there is none.

    A token never minted is created optimistically (one request); only a conflict,
    which a crash between "Secret written" and "status written" leaves, costs a read.
    """
    name, namespace = body.metadata.name, body.metadata.namespace
    owner = kube_secrets.Owner(kind.resource.kind, name, body.metadata.uid)
    secret_name = spec.secret_name or name
    if not already_minted:
        expires_at = spec.expires_at(out.now)
        if expires_at is not None and expires_at <= out.now:
            out.problem(policies.Problem(
                "ExpirationInPast", f"spec.expiration {spec.expiration} is in the past; set a future date"),
                "Failed")
            return None
        started = time.perf_counter()
        issued_at = rfc3339(out.now)
        token, token_id = mint_token(kind.prefix_of(memo.settings)), new_token_id()
        if _write_secret(kind, spec, body, memo, secret_name, token, token_id, issued_at, hash_token(token)):
            MINTED.labels(kind=kind.resource.kind).inc()
            MINT_SECONDS.labels(kind=kind.resource.kind).observe(time.perf_counter() - started)
            kopf.info(body, reason="Minted", message=f"token {token_id} minted into Secret {secret_name!r}")
            return token, token_id, issued_at, secret_name
        # The Secret exists: ours from before a crash (reuse it), or someone else's.

    with kube_errors_to_kopf():
        found = kube_secrets.read_token_secret(memo.core, namespace, secret_name, owner)
    if found is not None and not found.owned:
        out.problem(_secret_conflict(kind, secret_name), "Failed")
        return None
    if found is not None:
        return _accepted(kind, body, out, memo, found)
    # Minted before, and the Secret is gone: deleted by hand.
    kopf.warn(body, reason="SecretRecreated",
              message=f"Secret {secret_name!r} was deleted; its token is revoked and a new "
                      "token was minted into a new Secret")
    issued_at = rfc3339(out.now)
    token, token_id = mint_token(kind.prefix_of(memo.settings)), new_token_id()
    if not _write_secret(kind, spec, body, memo, secret_name, token, token_id, issued_at, hash_token(token)):
        raise kopf.TemporaryError(f"Secret {secret_name!r} appeared meanwhile; looking again", delay=1)
    MINTED.labels(kind=kind.resource.kind).inc()
    return token, token_id, issued_at, secret_name


def _accepted(kind: Kind, body: kopf.Body, out: _Status, memo, found: kube_secrets.TokenSecret) -> Credential:
    """The credential in our own Secret, if tokenwarden wrote it for this token; otherwise a
    new token minted into the Secret in place of the value written by hand."""
    status = body.status
    origin = policies.secret_value_origin(hash_or_none(found.token), hash_or_none(found.previous), found.recorded_hash,
                                          status.get("tokenHash"))
    if origin == policies.ROTATION_UNRECORDED:
        # A rotation wrote its successor, not yet its status: the status's token stays, and
        # the rotation (its daemon or its request, seen again) records the successor.
        return found.previous, status.get("tokenId") or found.token_id, status.get("issuedAt"), found.name
    if origin == policies.TAMPERED:
        # A replacement never outlives the token it replaces.
        issued_at = status.get("issuedAt") or rfc3339(out.now)
        token, token_id = replace_tampered_token(kind, body, memo, found.name, issued_at)
        out.patch.status.update(previousTokenHash=None, previousValidUntil=None)
        return token, token_id, issued_at, found.name
    # The status's times and id, when it has them: the Secret's annotations are not the authority.
    issued_at = status.get("issuedAt") or found.issued_at or rfc3339(out.now)
    return found.token, status.get("tokenId") or found.token_id or new_token_id(), issued_at, found.name


def hash_or_none(value: str | None) -> str | None:
    """The hash of a value read from a Secret, None for none."""
    return hash_token(value) if value is not None else None


def replace_tampered_token(kind: Kind, body: kopf.Body, memo, secret_name: str, issued_at: str) -> tuple[str, str]:
    """Mint a new token into a Secret whose value tokenwarden did not write; the caller puts its
    hash in status, which revokes the old token and the value written by hand alike."""
    token, token_id = mint_token(kind.prefix_of(memo.settings)), new_token_id()
    with kube_errors_to_kopf():
        kube_secrets.update_token_secret(memo.core, body.metadata.namespace, secret_name, token, issued_at,
                                         token_hash=hash_token(token), token_id=token_id, drop_previous=True)
    MINTED.labels(kind=kind.resource.kind).inc()
    kopf.warn(body, reason="SecretTampered",
              message=f"Secret {secret_name!r} held a value tokenwarden did not write for this "
                      f"{kind.resource.kind}; it is refused, the token before it is revoked, and token "
                      f"{token_id} was minted into the Secret")
    return token, token_id


def _write_secret(kind: Kind, spec, body: kopf.Body, memo, secret_name: str, token: str, token_id: str,
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


def _imported(kind: Kind, spec, body: kopf.Body, out: _Status, memo) -> tuple[Credential, str] | None:
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
        out.ready(False, "ImportSourceNotFound",
                  f"Secret {ref.name!r} to import from does not exist in namespace {namespace!r}; "
                  "create it (the key is imported as soon as it exists)", phase="Pending")
        raise kopf.TemporaryError(f"Secret {ref.name!r} not found", delay=WAIT_DELAY)
    importable = policies.is_importable(source.labels) or _bootstrap_source(namespace, name, ref.name, memo)
    not_importable = policies.source_not_importable_problem(ref.name, namespace)
    if not importable and not status.get("tokenHash"):
        # Waits for the label: a change to the Secret brings the token back here.
        if (condition(status.get("conditions"), "Ready") or {}).get("reason") != not_importable.reason:
            kopf.warn(body, reason=not_importable.reason, message=not_importable.message)
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
            kopf.warn(body, reason=not_importable.reason,
                      message=f"the key in Secret {ref.name!r} changed, but the Secret does not carry the label "
                              f"{policies.IMPORTABLE_LABEL}; the key imported before stays valid until the "
                              f"label is added: {policies.fix_label_command(ref.name, namespace)}")
            return None
        kopf.warn(body, reason=not_importable.reason,
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
        kopf.info(body, reason="ImportedKeyChanged",
                  message=f"the key in Secret {ref.name!r} changed; the new value replaces the old one")
    elif decision.change == "new":
        kopf.info(body, reason="Imported", message=f"key from Secret {ref.name!r} imported as token {token_id}")
    elif decision.change == "rehashed":
        kopf.info(body, reason="ImportRehashed",
                  message="the key's stored hash is now an HMAC under the cluster's import key")
    if spec.secret_name is None:
        return (value, token_id, issued_at, None), decision.token_hash
    owner = kube_secrets.Owner(kind.resource.kind, name, body.metadata.uid)
    with kube_errors_to_kopf():
        copy = kube_secrets.read_token_secret(memo.core, namespace, spec.secret_name, owner)
    if copy is not None and not copy.owned:
        out.problem(_secret_conflict(kind, spec.secret_name), "Failed")
        return None
    if copy is None:
        if not _write_secret(kind, spec, body, memo, spec.secret_name, value, token_id, issued_at):
            raise kopf.TemporaryError(f"Secret {spec.secret_name!r} appeared meanwhile; looking again", delay=1)
    elif copy.token != value:
        with kube_errors_to_kopf():
            kube_secrets.update_token_secret(memo.core, namespace, spec.secret_name, value, issued_at)
    return (value, token_id, issued_at, spec.secret_name), decision.token_hash


def _bootstrap_source(namespace: str, name: str, secret: str, memo) -> bool:
    """The operator's own bootstrap token reads the bootstrap Secret the cluster admin
    configured, labelled or not (the chart's existingSecret need not carry the label)."""
    config = memo.settings.bootstrap
    return bool(config.namespace) and (namespace, name, secret) == (config.namespace, config.token_name,
                                                                    config.secret_name)


def _account_disabled(kind: Kind, spec, namespace: str, memo) -> bool:
    if not kind.has_roles or not spec.service_account_name:
        return False
    return any(a.disabled for a in memo.indexes.accounts.get((namespace, spec.service_account_name)))


def revoke_token(kind: Kind, body: kopf.Body, memo, logger) -> None:
    """Delete the token's Secret (ours only): the finalizer's job, GC or not."""
    name, namespace = body.metadata.name, body.metadata.namespace
    secret_name = body.status.get("secretName") or body.spec.get("secretName") or name
    owner = kube_secrets.Owner(kind.resource.kind, name, body.metadata.uid)
    with kube_errors_to_kopf():
        gone = kube_secrets.delete_token_secret(memo.core, namespace, secret_name, owner)
    if gone:
        logger.info(f"revoked {kind.resource.kind} {body.status.get('tokenId')}: Secret deleted")


def _register(kind: Kind) -> None:
    plural = kind.resource.plural

    @kopf.on.create(GROUP, VERSION, plural, id="mint")
    @kopf.on.update(GROUP, VERSION, plural, field="spec", id="update")
    def mint(body, patch, memo, logger, **_):
        reconcile_token(kind, body, patch, memo, logger)

    @kopf.on.resume(GROUP, VERSION, plural, id="resume")
    def resume(body, patch, memo, logger, **_):
        reconcile_token(kind, body, patch, memo, logger, resuming=True)

    @kopf.on.delete(GROUP, VERSION, plural, id="revoke")
    def revoke(body, memo, logger, **_):
        revoke_token(kind, body, memo, logger)


for _kind in (SERVICE_TOKEN, INGESTION_KEY):
    _register(_kind)


def _past(moment: str | None) -> bool:
    expires_at = policies.parse_time(moment)
    return expires_at is not None and expires_at <= _now()


_KINDS_BY_NAME = {k.resource.kind: k for k in (SERVICE_TOKEN, INGESTION_KEY)}


def _controller_ref(body: kopf.Body) -> dict | None:
    """The ownerReference of a Secret's controlling token, if any."""
    return next((r for r in body.metadata.get("ownerReferences") or [] if r.get("controller")), None)


@kopf.on.event("", "v1", "secrets", labels={MANAGED_BY: MANAGED_BY_VALUE},
               when=lambda type, **_: type == "DELETED")
def secret_deleted(body, namespace, memo, logger, **_):
    """A token's Secret deleted by hand: its token is revoked and a new one is minted.

    The old plaintext is gone with the Secret, so keeping its hash valid would leave a
    credential nobody can rotate; agents get a fresh Secret under the same name.
    """
    ref = _controller_ref(body)
    kind = _KINDS_BY_NAME.get(ref.get("kind")) if ref else None
    if kind is None:
        return
    with kube_errors_to_kopf():
        token = objects.get_object(memo.custom, kind.resource, namespace, ref["name"])
    if (token is None or token["metadata"]["uid"] != ref.get("uid")
            or token["metadata"].get("deletionTimestamp")
            or (token.get("status") or {}).get("phase") != "Active"
            or token["status"].get("secretName") != body.metadata.name
            or _past(token["status"].get("expiresAt"))):
        return
    _reconcile_now(kind, token, memo, logger)


def _secret_value_unknown(type, body, namespace, memo, **_) -> bool:
    """A token Secret whose value is neither its token's (the hashes index) nor the one
    tokenwarden recorded as it wrote it. No API call: every Secret tokenwarden wrote passes
    here for free, a value written by hand (or an imported key's copy) costs one read."""
    ref = _controller_ref(body)
    if type == "DELETED" or body.metadata.get("deletionTimestamp") or not ref \
            or ref.get("kind") not in _KINDS_BY_NAME:
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
async def secret_value_changed(body, namespace, memo, logger, **_):
    """A token's Secret holds a value tokenwarden did not write (changed by hand): the value is
    refused, and a new token is minted into the Secret at once rather than at the next reconcile."""
    await asyncio.to_thread(_check_secret_value, body, namespace, memo, logger)


def _check_secret_value(body, namespace, memo, logger) -> None:
    ref = _controller_ref(body)
    kind = _KINDS_BY_NAME[ref["kind"]]
    with kube_errors_to_kopf():
        token = objects.get_object(memo.custom, kind.resource, namespace, ref["name"])
    status = (token or {}).get("status") or {}
    if (token is None or token["metadata"]["uid"] != ref.get("uid") or token["metadata"].get("deletionTimestamp")
            or ((token.get("spec") or {}).get("import") and kind.has_roles)
            or status.get("phase") in TERMINAL or not status.get("tokenHash")
            or status.get("secretName") != body.metadata.name or _past(status.get("expiresAt"))):
        return  # imports follow their source; a token not minted yet is its minting handler's
    value_hash = _value_hash(body)
    if value_hash is not None and value_hash == status["tokenHash"]:
        # Minted before hashes were recorded on Secrets: record it, so this costs no read again.
        with kube_errors_to_kopf():
            kube_secrets.record_token_hash(memo.core, namespace, body.metadata.name, value_hash)
        return
    logger.warning(f"Secret {namespace}/{body.metadata.name} holds a value tokenwarden did not write "
                   f"for {kind.resource.kind} {ref['name']}: minting a new token")
    _reconcile_now(kind, token, memo, logger)


def _reconcile_now(kind: Kind, token: dict, memo, logger) -> None:
    """Reconcile a token from another object's handler and write its status."""
    patch = kopf.Patch()
    reconcile_token(kind, kopf.Body(token), patch, memo, logger)
    if patch.get("status"):
        with kube_errors_to_kopf():
            objects.patch_status(memo.custom, kind.resource, token["metadata"]["namespace"],
                                 token["metadata"]["name"], dict(patch["status"]))


@kopf.on.event("", "v1", "secrets",
               when=lambda name, namespace, memo, **_: (namespace, name) in memo.indexes.imports)
async def import_source_changed(type, body, namespace, memo, logger, **_):
    """An imported key's source Secret changed or went: look at its importers again.

    The filter is one index lookup, so a Secret nobody imports from costs no call at all.
    """
    importers = memo.indexes.imports.get((namespace, body.metadata.name))
    if importers:
        await asyncio.to_thread(_recheck_importers, type, namespace, importers, memo, logger)


@kopf.on.event("", "v1", "secrets", when=lambda name, namespace, memo, **_: is_key_secret(name, namespace, memo))
async def import_key_changed(type, body, memo, logger, **_):
    """The import key's Secret changed: every imported key is re-hashed with the new key."""
    if await asyncio.to_thread(follow_key_secret, type, body, memo, logger):
        for (namespace, _), importers in memo.indexes.imports.items():
            await asyncio.to_thread(_recheck_importers, "MODIFIED", namespace, importers, memo, logger)


def _recheck_importers(type, namespace, importers, memo, logger) -> None:
    for name in importers:
        with kube_errors_to_kopf():
            token = objects.get_object(memo.custom, SERVICE_TOKENS, namespace, name)
        if token is None or token["metadata"].get("deletionTimestamp") or \
                (token.get("status") or {}).get("phase") in TERMINAL:
            continue
        if type == "DELETED":
            kopf.warn(token, reason="ImportSourceDeleted",
                      message=f"the Secret this key was imported from is gone; the key stays valid until "
                              f"this token is deleted or expires (kubectl delete servicetoken {name} revokes it)")
            continue
        _reconcile_now(SERVICE_TOKEN, token, memo, logger)


def _orphaned(type, body, memo, **_) -> bool:
    ref = _controller_ref(body)
    return (type != "DELETED" and not body.metadata.get("deletionTimestamp")
            and (ref or {}).get("uid") not in memo.indexes.owners)


@kopf.on.event("", "v1", "secrets", labels={MANAGED_BY: MANAGED_BY_VALUE, TOKEN_LABEL: kopf.PRESENT},
               when=_orphaned)
async def collect_orphaned_secret(body, name, namespace, memo, logger, **_):
    """A Secret with our labels whose token no longer exists is removed (also without a GC).

    The filter is one index lookup: a Secret whose token exists costs no call at all. The
    index may be behind (a standby replica that just took over has seen no events while it
    stood by), so the token is read before anything is deleted: only a token that is gone,
    or replaced by a namesake, leaves an orphan."""
    await asyncio.to_thread(_delete_orphan, body, name, namespace, memo, logger)


def _delete_orphan(body, name, namespace, memo, logger) -> None:
    ref = _controller_ref(body) or {}
    kind = _KINDS_BY_NAME.get(ref.get("kind"))
    with kube_errors_to_kopf():
        if kind is not None:
            owner = objects.get_object(memo.custom, kind.resource, namespace, ref.get("name", ""))
            if owner is not None and owner["metadata"]["uid"] == ref.get("uid"):
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


@kopf.on.startup()
async def start_unsettled_sweep(memo, logger, **_) -> None:
    """Safety net for tokens with no status, or Pending, that no event has touched for a
    while: their events may have been lost while the API server was away. One task for
    all of them, fed by the indexes, where a timer per token would hold 10,000 tasks."""
    memo.unsettled_sweep = asyncio.create_task(_sweep_unsettled(memo, logger))


@kopf.on.cleanup()
async def stop_unsettled_sweep(memo, **_) -> None:
    task = getattr(memo, "unsettled_sweep", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _sweep_unsettled(memo, logger) -> None:
    """In a standby replica (kopf peering) the sweep may act too; that is safe, since minting
    is idempotent (the Secret's create is atomic and a conflict reuses its token), and it only
    acts on tokens the API server shows unsettled for a minute."""
    while True:
        await asyncio.sleep(UNSETTLED_SWEEP)
        for entry in memo.indexes.stale_unsettled(UNSETTLED_AFTER, UNSETTLED_LIMIT):
            kind = _KINDS_BY_NAME[entry.kind]
            try:
                token = await asyncio.to_thread(_read, kind, entry, memo)
                memo.indexes.learn(entry, token)  # a paused replica sees no events: learn here
                if token is None:
                    continue
                if token["metadata"].get("deletionTimestamp") or \
                        (token.get("status") or {}).get("phase") not in (None, "Pending"):
                    continue
                logger.info(f"{entry.kind} {entry.namespace}/{entry.name} sat unsettled: reconciling it")
                await asyncio.to_thread(_reconcile_now, kind, token, memo, logger)
            except (kopf.TemporaryError, kopf.PermanentError) as exc:
                logger.info(f"{entry.kind} {entry.namespace}/{entry.name} is still unsettled: {exc}")
            except Exception as exc:  # noqa: BLE001  (the sweep outlives any one token)
                logger.warning(f"could not look at {entry.kind} {entry.namespace}/{entry.name} again: {exc!r}")


def _read(kind: Kind, entry, memo) -> dict | None:
    with kube_errors_to_kopf():
        return objects.get_object(memo.custom, kind.resource, entry.namespace, entry.name)
