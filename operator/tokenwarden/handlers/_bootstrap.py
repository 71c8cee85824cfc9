"""The bootstrap token from Helm values (authentication.servicetoken.bootstrap).

The chart writes the values into a Secret (keys ``token``, ``roles``, ``ttl``); the
operator keeps exactly one ServiceToken that imports it. Its ``issuedAt`` is the
first creation, so restarts and upgrades with the same values never extend the
ttl; a new token value re-hashes it (issued anew); no Secret, no bootstrap token.
The value is read from the Secret only, never from an environment variable, and a
placeholder (the example's, or anything that looks like one) is refused.

A ServiceToken under the bootstrap name that the operator did not create is never
adopted, changed or deleted. The proof of creation is its uid, recorded on the
bootstrap Secret right after the create: the API server picks uids, and only those
who may write the bootstrap Secret (who hold the bootstrap token anyway) can record
one. A crash between the create and the record is covered by a one-time claim,
written to the Secret before the create and carried by the token.
"""
from __future__ import annotations

import secrets

import kopf
from pydantic import ValidationError

from tokenwarden import reasons
from tokenwarden import policies
from tokenwarden.api import ServiceTokenSpec, describe_validation_error
from tokenwarden.handlers import _events as events
from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.kube import objects
from tokenwarden.kube import secrets as kube_secrets
from tokenwarden.kube._resources import API_VERSION, SERVICE_TOKENS

BOOTSTRAP_LABEL = "tokenwarden.io/bootstrap"
# On the bootstrap Secret: the uid of the ServiceToken the operator created for it, or
# "claim:<nonce>" while it creates one; on that ServiceToken, the same nonce.
CREATED_UID_ANNOTATION = "tokenwarden.io/bootstrap-token-uid"
CLAIM_ANNOTATION = "tokenwarden.io/bootstrap-claim"
_CLAIM = "claim:"


def _created_uid(secret: kopf.Body, existing: dict | None) -> str | None:
    """The uid of the bootstrap ServiceToken the operator created, as the Secret records it;
    ``existing`` carrying the claim the Secret records counts as created (a crash came before
    its uid was recorded)."""
    recorded = (secret.metadata.annotations or {}).get(CREATED_UID_ANNOTATION)
    if recorded and recorded.startswith(_CLAIM) and existing is not None:
        claim = (existing["metadata"].get("annotations") or {}).get(CLAIM_ANNOTATION)
        return existing["metadata"]["uid"] if claim and recorded == _CLAIM + claim else None
    return recorded


def _foreign(secret: kopf.Body, memo, logger) -> None:
    config = memo.settings.bootstrap
    problem = policies.foreign_bootstrap_problem(config.namespace, config.token_name)
    events.warn(secret, reason=problem.reason, message=problem.message)
    logger.error(f"bootstrap token not applied: {problem.message}")


def revoke_bootstrap(memo, logger, why: str, secret: kopf.Body | None = None) -> None:
    """Delete the bootstrap ServiceToken if the operator created it: ``secret`` (the bootstrap
    Secret as last seen) records which one that is. Without the Secret, only a token owned by
    it goes, which Kubernetes' garbage collector would remove anyway."""
    config = memo.settings.bootstrap
    with kube_errors_to_kopf():
        existing = objects.get_object(memo.custom, SERVICE_TOKENS, config.namespace, config.token_name)
    if existing is None:
        return
    uid = existing["metadata"]["uid"]
    if secret is not None:
        ours = policies.bootstrap_token_is_ours(uid, _created_uid(secret, existing))
    else:
        ours = any(ref.get("kind") == "Secret" and ref.get("name") == config.secret_name
                   for ref in existing["metadata"].get("ownerReferences") or [])
    if not ours:
        if secret is not None:
            _foreign(secret, memo, logger)
        return
    with kube_errors_to_kopf():
        objects.delete_object(memo.custom, SERVICE_TOKENS, config.namespace, config.token_name, uid=uid)
    logger.info(f"bootstrap token revoked: {why}")


def ensure_bootstrap(secret: kopf.Body, memo, logger) -> None:
    config = memo.settings.bootstrap
    with kube_errors_to_kopf():
        stored = kube_secrets.read_secret_data(memo.core, config.namespace, config.secret_name) or {}
    data = {key: kube_secrets.text_of(stored, key) for key in ("token", "roles", "ttl")}
    problem = policies.bootstrap_token_problem(data["token"], config.min_length)
    roles = policies.parse_roles(data["roles"])
    if problem is None and not roles:
        problem = policies.Problem(reasons.BOOTSTRAP_ROLES_MISSING,
                                   "authentication.servicetoken.bootstrap.roles is empty; name at least one role")
    ttl = (data["ttl"] or "").strip()
    if problem is None and ttl:
        try:
            ServiceTokenSpec(roles=roles, ttl=ttl)
        except ValidationError as exc:
            problem = policies.Problem(reasons.BOOTSTRAP_TTL_INVALID, "authentication.servicetoken.bootstrap"
                                       + describe_validation_error(exc, prefix=""))
    if problem is None:
        missing = policies.unknown_roles(roles, memo.settings.roles)
        if missing:
            problem = policies.Problem(reasons.UNKNOWN_ROLE, f"bootstrap role {', '.join(missing)} is not in the role "
                                                      f"catalog (known: {', '.join(sorted(memo.settings.roles))})")
    if problem is not None:
        events.warn(secret, reason=reasons.BOOTSTRAP_REFUSED, message=problem.message)
        logger.error(f"bootstrap token refused: {problem.message}")
        revoke_bootstrap(memo, logger, "its values are invalid", secret)
        return

    spec = {
        "roles": roles,
        "description": "Bootstrap token from the Helm values (authentication.servicetoken.bootstrap)",
        "import": {"secretRef": {"name": config.secret_name, "key": "token"}},
    }
    if ttl:
        spec["ttl"] = ttl
    with kube_errors_to_kopf():
        existing = objects.get_object(memo.custom, SERVICE_TOKENS, config.namespace, config.token_name)
    if existing is None:
        _create(secret, spec, memo, logger)
        return
    recorded = _created_uid(secret, existing)
    if not policies.bootstrap_token_is_ours(existing["metadata"]["uid"], recorded):
        _foreign(secret, memo, logger)
        return
    if recorded != (secret.metadata.annotations or {}).get(CREATED_UID_ANNOTATION):
        _record(recorded, memo)  # created before a crash kept its uid from the Secret
    current = existing.get("spec") or {}
    if current.get("roles") != roles or current.get("ttl") != spec.get("ttl"):
        # Our own object, not the user's: keeping it equal to the values is no drift.
        with kube_errors_to_kopf():
            objects.set_spec_fields(memo.custom, SERVICE_TOKENS, config.namespace, config.token_name,
                                    {"roles": roles, "ttl": spec.get("ttl")})
        logger.info("bootstrap token updated to the Helm values' roles and ttl")


def _create(secret: kopf.Body, spec: dict, memo, logger) -> None:
    config = memo.settings.bootstrap
    claim = secrets.token_hex(16)
    _record(_CLAIM + claim, memo)
    body = {"apiVersion": API_VERSION, "kind": SERVICE_TOKENS.kind,
            "metadata": {"name": config.token_name, "labels": {BOOTSTRAP_LABEL: "true"},
                         "annotations": {CLAIM_ANNOTATION: claim},
                         # Kubernetes' garbage collector removes it with the Secret, operator or not.
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Secret", "name": config.secret_name,
                                              "uid": secret.metadata.uid}]},
            "spec": spec}
    with kube_errors_to_kopf():
        created = objects.create_object(memo.custom, SERVICE_TOKENS, config.namespace, body)
    _record(created["metadata"]["uid"], memo)
    logger.info("bootstrap token created from the Helm values")


def _record(value: str, memo) -> None:
    config = memo.settings.bootstrap
    with kube_errors_to_kopf():
        kube_secrets.annotate_secret(memo.core, config.namespace, config.secret_name, {CREATED_UID_ANNOTATION: value})


def settle_bootstrap(memo, logger) -> None:
    """The bootstrap token as the bootstrap Secret stands now: ensured from its values, or
    revoked when there is no Secret. Run at each resync and on each change of the Secret."""
    config = memo.settings.bootstrap
    with kube_errors_to_kopf():
        secret = kube_secrets.read_secret_object(memo.core, config.namespace, config.secret_name)
    if secret is None:
        # The Secret as this process last saw it still tells which token the operator created:
        # a settle that took the place of its deletion's revoke (one work key) must not lose that.
        revoke_bootstrap(memo, logger, "the values have no bootstrap section", getattr(memo, "bootstrap_seen", None))
    else:
        memo.bootstrap_seen = kopf.Body(secret)  # read without its data: which token it records
        ensure_bootstrap(kopf.Body(secret), memo, logger)


def bootstrap_listed(keys: set, memo, logger) -> None:
    """The follower of the bootstrap Secret listed it: a listing without it (deleted after
    this process first read it, before its watch began, or while no watch ran) sends no
    event, so the token is settled as on a deletion."""
    config = memo.settings.bootstrap
    if (config.namespace, config.secret_name) not in keys:
        memo.work.submit(("bootstrap",), settle_bootstrap, memo, logger)


def bootstrap_secret(type: str, body: dict | None, memo, logger) -> None:
    """The bootstrap Secret, followed by its name (handlers/_watches.py), changed or went:
    the token is settled as the Secret stands then. The settle reads the Secret by name, so a
    DELETED is confirmed before anything is revoked; and the work queue retries until it holds
    (at a fresh install the first attempt meets the operator's own admission webhook before
    its Service routes to a ready replica)."""
    if body is not None:
        memo.bootstrap_seen = kopf.Body(body)  # what settle_bootstrap falls back on once the Secret is gone
    memo.work.submit(("bootstrap",), settle_bootstrap, memo, logger)
