"""The two kinds of token, and what their handlers share: the status they patch, the
clock, and the Secret's link to its token."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import kopf
from pydantic import ValidationError

from tokenwarden import policies
from tokenwarden.clock import now
from tokenwarden.api import IngestionAPIKeySpec, ServiceTokenSpec
from tokenwarden.conditions import set_condition
from tokenwarden.handlers import _events as events
from tokenwarden.kube._resources import INGESTION_KEYS, SERVICE_TOKENS, Resource

WAIT_DELAY = 5.0  # seconds before a token waiting on its account or binding looks again
TERMINAL = ("Expired", "Revoked")


@dataclass(frozen=True)
class Kind:
    resource: Resource
    spec_model: type
    prefix_of: object  # Settings -> prefix
    has_roles: bool


SERVICE_TOKEN = Kind(SERVICE_TOKENS, ServiceTokenSpec, lambda s: s.prefixes.service_token, True)
INGESTION_KEY = Kind(INGESTION_KEYS, IngestionAPIKeySpec, lambda s: s.prefixes.ingestion_key, False)


class TokenStatus:
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
        events.warn(self.body, reason=problem.reason, message=problem.message)


# What an edit the model refuses can touch and still leave the rest of a spec to act on.
_LIFETIME_FIELDS = ("ttl", "expiration", "rotation")


def spec_to_settle(kind: Kind, raw: dict | None):
    """The spec a minted token is settled on, and whether it is the object's whole spec.

    An edit the model refuses is not applied (handlers._mint: the token stays Active as it
    was). Until it is corrected the token is still settled on the rest of its spec, so a
    revocation, a requested rotation and a leak are acted on; its lifetime stays as minted
    and no rotation is scheduled. (None, False): nothing of the spec can be decided on."""
    raw = raw or {}
    try:
        return kind.spec_model.model_validate(raw), True
    except ValidationError:
        pass
    try:
        return kind.spec_model.model_validate({k: v for k, v in raw.items() if k not in _LIFETIME_FIELDS}), False
    except ValidationError:
        return None, False


def past(moment: str | None) -> bool:
    expires_at = policies.parse_time(moment)
    return expires_at is not None and expires_at <= now()


KINDS_BY_NAME = {k.resource.kind: k for k in (SERVICE_TOKEN, INGESTION_KEY)}


def controller_ref(body: kopf.Body) -> dict | None:
    """The ownerReference of a Secret's controlling token, if any."""
    return next((r for r in body.metadata.get("ownerReferences") or [] if r.get("controller")), None)
