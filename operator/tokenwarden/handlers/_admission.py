"""Validating admission: refuse at the door what the API server's schema cannot check.

Quotas, the role catalog and past expirations need the operator's knowledge; the
same checks run again in the reconcilers, so nothing depends on the webhook
being reachable (its failure policy is Ignore).
"""
from __future__ import annotations

from datetime import datetime, timezone

import kopf
from pydantic import ValidationError

from tokenwarden import policies
from tokenwarden.api import IngestionAPIKeySpec, ServiceTokenSpec, describe_validation_error
from tokenwarden.kube._resources import GROUP, INGESTION_KEYS, ROLE_BINDINGS, SERVICE_ACCOUNTS, SERVICE_TOKENS, VERSION

_REFUSED = 422


def _refuse(problem: policies.Problem) -> None:
    raise kopf.AdmissionError(problem.message, code=_REFUSED)


def _parse(model, spec):
    try:
        return model.model_validate(dict(spec or {}))
    except ValidationError as exc:
        raise kopf.AdmissionError(describe_validation_error(exc), code=_REFUSED) from None


def _check_roles(roles, memo) -> None:
    missing = policies.unknown_roles(roles or [], memo.settings.roles)
    if missing:
        _refuse(policies.Problem("UnknownRole",
                                 f"role {', '.join(missing)} is not in the role catalog "
                                 f"(known: {', '.join(sorted(memo.settings.roles))})"))


def _check_expiration(spec) -> None:
    now = datetime.now(timezone.utc)
    expires_at = spec.expires_at(now)
    if spec.expiration and expires_at is not None and expires_at <= now:
        _refuse(policies.Problem("ExpirationInPast",
                                 f"spec.expiration {spec.expiration} is in the past; set a future date"))


async def validate_account(name, namespace, memo, **_):
    others = [a for a in memo.indexes.accounts.get(namespace) if a.name != name]
    problem = policies.account_quota_problem(len(others), memo.settings.quotas.max_accounts_per_namespace)
    if problem:
        _refuse(problem)


async def validate_binding(spec, memo, **_):
    _check_roles(spec.get("roles"), memo)


async def validate_token(name, namespace, spec, operation, memo, **_):
    parsed = _parse(ServiceTokenSpec, spec)
    _check_roles(parsed.roles, memo)
    if parsed.import_ is not None:
        problem = policies.source_namespace_problem(namespace, parsed.import_.secret_ref.namespace)
        if problem:
            _refuse(problem)
    if operation == "CREATE":
        _check_expiration(parsed)
        account = parsed.service_account_name
        if account:
            others = [t for t in memo.indexes.tokens.get((namespace, account)) if t.name != name]
            problem = policies.token_quota_problem(len(others), memo.settings.quotas.max_tokens_per_account,
                                                   account)
            if problem:
                _refuse(problem)


async def validate_key(spec, operation, **_):
    parsed = _parse(IngestionAPIKeySpec, spec)
    if operation == "CREATE":
        _check_expiration(parsed)


def register() -> None:
    """Register the validating webhooks (only when the operator serves them)."""
    kopf.on.validate(GROUP, VERSION, SERVICE_ACCOUNTS.plural, id="validate-account", operations=["CREATE"], ignore_failures=True)(validate_account)
    kopf.on.validate(GROUP, VERSION, ROLE_BINDINGS.plural, id="validate-binding", operations=["CREATE", "UPDATE"], ignore_failures=True)(validate_binding)
    kopf.on.validate(GROUP, VERSION, SERVICE_TOKENS.plural, id="validate-token", operations=["CREATE", "UPDATE"], ignore_failures=True)(validate_token)
    kopf.on.validate(GROUP, VERSION, INGESTION_KEYS.plural, id="validate-key", operations=["CREATE", "UPDATE"], ignore_failures=True)(validate_key)
