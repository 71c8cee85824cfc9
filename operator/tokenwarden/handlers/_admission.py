"""Validating admission: refuse at the door what the API server's schema cannot check.

Quotas, the role catalog and past expirations need the operator's knowledge; the
same checks run again in the reconcilers. Run outside the cluster, kopf manages the
webhook configuration with failure policy Ignore; the Helm chart installs its own
(``templates/webhook.yaml``: the same webhooks, paths and rules as ``register`` below,
which a test compares) with ``operator.webhook.failurePolicy``, Fail by default.

Every replica serves the webhook, a standby (kopf peering) too, and the Service sends each
request to any of them, so a quota is counted the same whichever answers. The active replica
counts from its indexes, which kopf's watches keep current, and counts again from the API
server before it refuses (an object deleted while a watch was away stays indexed until the
next listing, and must refuse no one). A standby's watches are paused, so its indexes are as
old as its start: it counts from a listing of the namespace, made for the request.

An update that leaves ``spec`` alone is not checked, but for a tokenwarden.io annotation it
changes (a value out of bounds): every other check looks at ``spec`` only, and a role dropped
from the catalog must not stop a label, an annotation or a finalizer from being written.

Whoever creates an object must hold what it grants (``policies._grants``): ``bind`` on each
role, ``use`` on the project, ``get`` on an imported Secret, asked of the API server with a
SubjectAccessReview for the request's user. An update is checked for what it newly grants
only. When the review cannot be made, the request is refused: a grant is never let through
unchecked (and the chart's failure policy Fail refuses when the webhook itself is away).
An allowed answer is reused for a few seconds for the very same question (kube.access.ReviewCache):
a burst of tokens from one requester costs one review per permission, not two per token.
"""
from __future__ import annotations

import asyncio
import functools
import time

import kopf
from pydantic import ValidationError

from tokenwarden import reasons
from tokenwarden import clock, policies
from tokenwarden.api import (
    IngestionAPIKeySpec,
    RoleBindingSpec,
    ServiceAccountSpec,
    ServiceTokenSpec,
    describe_validation_error,
)
from tokenwarden.handlers._indexes import Indexes
from tokenwarden.handlers._listings import current
from tokenwarden.handlers._metrics import ADMISSION_DENIALS, ADMISSION_DURATION, ADMISSION_REQUESTS
from tokenwarden.kube import access, objects
from tokenwarden.kube._resources import GROUP, INGESTION_KEYS, ROLE_BINDINGS, SERVICE_ACCOUNTS, SERVICE_TOKENS, VERSION

_REFUSED = 422


class Refused(kopf.AdmissionError):
    """A refusal, with the reason it is counted under in tokenwarden_admission_denials_total."""

    def __init__(self, problem: policies.Problem) -> None:
        super().__init__(problem.message, code=_REFUSED)
        self.reason = problem.reason


def _refuse(problem: policies.Problem) -> None:
    raise Refused(problem)


def _parse(model, spec):
    try:
        return model.model_validate(dict(spec or {}))
    except ValidationError as exc:
        raise Refused(policies.Problem(reasons.INVALID_SPEC, describe_validation_error(exc))) from None


def _check_roles(roles, memo) -> None:
    missing = policies.unknown_roles(roles or [], memo.settings.roles)
    if missing:
        _refuse(policies.Problem(reasons.UNKNOWN_ROLE,
                                 f"role {', '.join(missing)} is not in the role catalog "
                                 f"(known: {', '.join(sorted(memo.settings.roles))})"))


def _check_expiration(spec) -> None:
    now = clock.now()
    expires_at = spec.expires_at(now)
    if spec.expiration and expires_at is not None and expires_at <= now:
        _refuse(policies.Problem(reasons.EXPIRATION_IN_PAST,
                                 f"spec.expiration {spec.expiration} is in the past; set a future date"))


def _check_annotations(operation, old, new) -> None:
    """The tokenwarden.io annotations a tenant writes, bounded: a value that changes is checked
    (whatever else the update leaves alone), one already there is not, so that an object that
    got one past admission can still lose its finalizers and be deleted."""
    checks = ((policies.ROTATE_ANNOTATION, policies.rotate_request_problem, policies.ROTATION_REQUEST_TOO_LONG),
              (policies.LEAKED_ANNOTATION, policies.leaked_problem, reasons.LEAKED_ANNOTATION_INVALID))
    for key, problem_of, reason in checks:
        value = _annotation(new, key)
        if operation == "UPDATE" and value == _annotation(old, key):
            continue
        problem = problem_of(value)
        if problem:
            _refuse(policies.Problem(reason, problem))


def _annotation(body, key: str) -> str | None:
    return (((body or {}).get("metadata") or {}).get("annotations") or {}).get(key)


def _spec_unchanged(operation, old, new) -> bool:
    return operation == "UPDATE" and old is not None and new is not None and \
        (old.get("spec") or {}) == (new.get("spec") or {})


def _binding_grants(spec: RoleBindingSpec) -> frozenset:
    return policies.binding_grants(spec.roles, spec.project)


def _token_grants(memo):
    def grants(spec: ServiceTokenSpec) -> frozenset:
        imported = spec.import_.secret_ref.name if spec.import_ is not None else None
        return policies.token_grants(spec.roles, spec.service_account_name, imported, spec.audiences,
                                     memo.settings.audiences)
    return grants


def _key_grants(spec: IngestionAPIKeySpec) -> frozenset:
    return policies.key_grants(spec.project)


def _granted_before(model, grants_of, operation, old) -> frozenset:
    """What the object granted before this update; nothing on create, or when the old spec no
    longer parses (then all it grants is checked)."""
    if operation != "UPDATE" or old is None:
        return frozenset()
    try:
        return grants_of(model.model_validate(dict(old.get("spec") or {})))
    except ValidationError:
        return frozenset()


async def _check_grants(kind: str, namespace: str, granted: frozenset, before: frozenset, userinfo, memo) -> None:
    """Refuse unless the requester holds every permission that what is newly granted needs."""
    needed = policies.needed_permissions(granted, before)
    if not needed:
        return
    user = dict(userinfo or {})
    try:
        missing = await access.missing_permissions(memo.core.api_client, user, namespace, needed, memo.reviews)
    except Exception as exc:  # noqa: BLE001  (fail closed, with the cause instead of a stack trace)
        failure = policies.grant_unchecked(str(exc) or type(exc).__name__)
    else:
        if not missing:
            return
        failure = policies.grant_refused(user.get("username") or "(unknown)", namespace, kind, missing)
    _refuse(failure)


def _listed(memo, resource, namespace: str) -> Indexes:
    """Indexes of one kind in one namespace, read from the API server now."""
    fresh = Indexes(memo.settings.roles)
    for body in objects.iter_objects(memo.custom, resource, namespace):
        fresh.observe(resource.kind, body)
    return fresh


async def _quota_problem(memo, resource, namespace: str, problem):
    """What ``problem`` (a quota's policy, given indexes) finds. Counted from a listing made
    now in a standby, whose indexes no watch feeds, in a replica whose indexes are not
    complete yet (at start, while kopf lists again), and before the active replica refuses;
    an allowance of the active replica stands (the reconciler checks it again)."""
    known = problem(memo.indexes)
    if known is None and current(memo, namespace):
        return None
    try:
        return await asyncio.to_thread(lambda: problem(_listed(memo, resource, namespace)))
    except Exception:  # noqa: BLE001  (the API server is away: the indexes' answer stands)
        return known


async def validate_account(name, namespace, operation, old, new, memo, spec=None, **_):
    if _spec_unchanged(operation, old, new):
        return
    _parse(ServiceAccountSpec, spec)
    limit = memo.settings.quotas.max_accounts_per_namespace

    def problem(indexes: Indexes):
        return policies.account_over_quota(indexes.accounts.get(namespace), name, None, limit)

    found = await _quota_problem(memo, SERVICE_ACCOUNTS, namespace, problem)
    if found:
        _refuse(found)


async def validate_binding(namespace, spec, operation, old, new, memo, userinfo=None, **_):
    if _spec_unchanged(operation, old, new):
        return
    parsed = _parse(RoleBindingSpec, spec)  # first: roles are read as the model holds them
    _check_roles(parsed.roles, memo)
    await _check_grants("RoleBinding", namespace, _binding_grants(parsed),
                        _granted_before(RoleBindingSpec, _binding_grants, operation, old), userinfo, memo)


async def validate_token(name, namespace, spec, operation, old, new, memo, userinfo=None, **_):
    _check_annotations(operation, old, new)
    if _spec_unchanged(operation, old, new):
        return
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
            limit = memo.settings.quotas.max_tokens_per_account

            def problem(indexes: Indexes):
                return policies.token_quota_problem(indexes.tokens.get((namespace, account)), name, None,
                                                    limit, account)

            found = await _quota_problem(memo, SERVICE_TOKENS, namespace, problem)
            if found:
                _refuse(found)
    grants = _token_grants(memo)
    await _check_grants("ServiceToken", namespace, grants(parsed),
                        _granted_before(ServiceTokenSpec, grants, operation, old), userinfo, memo)


async def validate_key(namespace, spec, operation, old, new, memo, userinfo=None, **_):
    _check_annotations(operation, old, new)
    if _spec_unchanged(operation, old, new):
        return
    parsed = _parse(IngestionAPIKeySpec, spec)
    if operation == "CREATE":
        _check_expiration(parsed)
    await _check_grants("IngestionAPIKey", namespace, _key_grants(parsed),
                        _granted_before(IngestionAPIKeySpec, _key_grants, operation, old), userinfo, memo)


def measured(kind: str, validate):
    """``validate``, counted and timed in the admission metrics by kind, operation and result
    (allowed, denied, error), its refusals counted by reason."""

    @functools.wraps(validate)
    async def handler(operation, **kwargs):
        started, result = time.perf_counter(), "allowed"
        try:
            return await validate(operation=operation, **kwargs)
        except kopf.AdmissionError as exc:
            result = "denied"
            ADMISSION_DENIALS.labels(kind, operation, getattr(exc, "reason", "Refused")).inc()
            raise
        except Exception:
            result = "error"
            raise
        finally:
            ADMISSION_REQUESTS.labels(kind, operation, result).inc()
            ADMISSION_DURATION.labels(kind, operation, result).observe(time.perf_counter() - started)

    return handler


# id → (resource, operations): what each validating webhook is called for. The chart's
# ValidatingWebhookConfiguration has one webhook per entry, at path /<id> (kopf's webhook
# server routes a request to the handler whose id is the path).
WEBHOOKS = {
    "validate-account": (SERVICE_ACCOUNTS, ("CREATE",), validate_account),
    "validate-binding": (ROLE_BINDINGS, ("CREATE", "UPDATE"), validate_binding),
    "validate-token": (SERVICE_TOKENS, ("CREATE", "UPDATE"), validate_token),
    "validate-key": (INGESTION_KEYS, ("CREATE", "UPDATE"), validate_key),
}


def register(registry: kopf.OperatorRegistry | None = None) -> None:
    """Register the validating webhooks (only when the operator serves them)."""
    for handler_id, (resource, operations, fn) in WEBHOOKS.items():
        kopf.on.validate(GROUP, VERSION, resource.plural, id=handler_id, operations=list(operations),
                         ignore_failures=True, registry=registry)(measured(resource.kind, fn))
