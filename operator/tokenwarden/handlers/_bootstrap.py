"""The bootstrap token from Helm values (authentication.servicetoken.bootstrap).

The chart writes the values into a Secret (keys ``token``, ``roles``, ``ttl``); the
operator keeps exactly one ServiceToken that imports it. Its ``issuedAt`` is the
first creation, so restarts and upgrades with the same values never extend the
ttl; a new token value re-hashes it (issued anew); no Secret, no bootstrap token.
The value is read from the Secret only, never from an environment variable.
"""
from __future__ import annotations

import asyncio

import kopf
from pydantic import ValidationError

from tokenwarden import policies
from tokenwarden.api import ServiceTokenSpec, describe_validation_error
from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.kube import objects
from tokenwarden.kube import secrets as kube_secrets
from tokenwarden.kube._resources import API_VERSION, SERVICE_TOKENS

BOOTSTRAP_LABEL = "tokenwarden.io/bootstrap"


def _is_bootstrap_secret(name: str, namespace: str, memo) -> bool:
    config = memo.settings.bootstrap
    return bool(config.namespace) and namespace == config.namespace and name == config.secret_name


def revoke_bootstrap(memo, logger, why: str) -> None:
    config = memo.settings.bootstrap
    with kube_errors_to_kopf():
        existing = objects.get_object(memo.custom, SERVICE_TOKENS, config.namespace, config.token_name)
        if existing is not None:
            objects.delete_object(memo.custom, SERVICE_TOKENS, config.namespace, config.token_name)
            logger.info(f"bootstrap token revoked: {why}")


def ensure_bootstrap(secret: kopf.Body, memo, logger) -> None:
    config = memo.settings.bootstrap
    with kube_errors_to_kopf():
        stored = kube_secrets.read_secret_data(memo.core, config.namespace, config.secret_name) or {}
    data = {key: kube_secrets.text_of(stored, key) for key in ("token", "roles", "ttl")}
    problem = policies.bootstrap_token_problem(data["token"], config.min_length)
    roles = policies.parse_roles(data["roles"])
    if problem is None and not roles:
        problem = policies.Problem("BootstrapRolesMissing",
                                   "authentication.servicetoken.bootstrap.roles is empty; name at least one role")
    ttl = (data["ttl"] or "").strip()
    if problem is None and ttl:
        try:
            ServiceTokenSpec(roles=roles, ttl=ttl)
        except ValidationError as exc:
            problem = policies.Problem("BootstrapTTLInvalid", "authentication.servicetoken.bootstrap"
                                       + describe_validation_error(exc, prefix=""))
    if problem is None:
        missing = policies.unknown_roles(roles, memo.settings.roles)
        if missing:
            problem = policies.Problem("UnknownRole", f"bootstrap role {', '.join(missing)} is not in the role "
                                                      f"catalog (known: {', '.join(sorted(memo.settings.roles))})")
    if problem is not None:
        kopf.warn(secret, reason="BootstrapRefused", message=problem.message)
        logger.error(f"bootstrap token refused: {problem.message}")
        revoke_bootstrap(memo, logger, "its values are invalid")
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
        body = {"apiVersion": API_VERSION, "kind": SERVICE_TOKENS.kind,
                "metadata": {"name": config.token_name, "labels": {BOOTSTRAP_LABEL: "true"}}, "spec": spec}
        with kube_errors_to_kopf():
            objects.create_object(memo.custom, SERVICE_TOKENS, config.namespace, body)
        logger.info("bootstrap token created from the Helm values")
        return
    current = existing.get("spec") or {}
    if current.get("roles") != roles or current.get("ttl") != spec.get("ttl"):
        # Our own object, not the user's: keeping it equal to the values is no drift.
        with kube_errors_to_kopf():
            objects.set_spec_fields(memo.custom, SERVICE_TOKENS, config.namespace, config.token_name,
                                    {"roles": roles, "ttl": spec.get("ttl")})
        logger.info("bootstrap token updated to the Helm values' roles and ttl")


# kopf never retries an event handler, and at a fresh install the first attempt meets the
# operator's own admission webhook before its Service routes to a ready replica.
RETRY_DELAYS = (2, 5, 10, 20, 30, 60, 60, 60)


async def _retried(fn, *args, logger) -> None:
    for delay in (*RETRY_DELAYS, None):
        try:
            await asyncio.to_thread(fn, *args)
            return
        except kopf.TemporaryError as exc:
            if delay is None:
                raise
            logger.warning(f"bootstrap token: {exc}; trying again in {delay}s")
            await asyncio.sleep(delay)


@kopf.on.event("", "v1", "secrets",
               when=lambda name, namespace, memo, **_: _is_bootstrap_secret(name, namespace, memo))
async def bootstrap_secret(type, body, memo, logger, **_):
    """Only the bootstrap Secret passes the filter: every other Secret costs no call at all."""
    if type == "DELETED":
        await _retried(revoke_bootstrap, memo, logger, "the bootstrap Secret was removed from the values",
                       logger=logger)
    else:
        await _retried(ensure_bootstrap, body, memo, logger, logger=logger)


@kopf.on.startup()
def bootstrap_on_start(memo, logger, **_):
    """Values without a bootstrap section leave no Secret: then no bootstrap token either."""
    config = memo.settings.bootstrap
    if not config.namespace:
        return
    if kube_secrets.read_secret_data(memo.core, config.namespace, config.secret_name) is None:
        revoke_bootstrap(memo, logger, "the values have no bootstrap section")
