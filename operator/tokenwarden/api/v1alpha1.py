"""The four kinds of ``tokenwarden.io/v1alpha1`` as pydantic models.

These models are the single source of truth: the CRDs in ``crds/`` and the chart
are generated from them (``python -m tokenwarden.api``), and the operator and
the admission webhook parse every spec with them.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Literal

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from tokenwarden.durations import DURATION_PATTERN, parse_duration

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ROLE_NAME = r"^[a-z0-9]([-a-z0-9:]*[a-z0-9])?$"
EXPIRATION = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2}))?$"
TOKEN_HASH = r"^sha256:[0-9a-f]{64}$"
MAX_TTL = timedelta(days=3650)


def _immutable(field: str) -> dict:
    return {"x-kubernetes-validations": [
        {"rule": "self == oldSelf", "message": f"{field} is immutable; delete and re-create the object"}]}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True,
                              alias_generator=AliasGenerator(alias=to_camel))


# -- shared pieces -----------------------------------------------------------

class SecretTemplate(_Model):
    """Labels and annotations added to the token's Secret."""

    labels: dict[str, str] | None = Field(None, description="Labels added to the Secret.")
    annotations: dict[str, str] | None = Field(None, description="Annotations added to the Secret.")


class RestartTarget(_Model):
    kind: Literal["Deployment", "DaemonSet", "StatefulSet"] = Field(
        description="Kind of the workload that mounts the Secret.")
    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN, description="Name of the workload (same namespace).")


class Rotation(_Model):
    """Mint a successor before expiry and roll the workloads that mount the Secret."""

    renew_before: str = Field(max_length=32, json_schema_extra={"pattern": DURATION_PATTERN},
                              description="How long before expiresAt a new token replaces the old one, e.g. 7d.")
    restart_targets: list[RestartTarget] | None = Field(
        None, max_length=20,
        description="Workloads rollout-restarted (as kubectl rollout restart does) when the token changes.")

    @field_validator("renew_before")
    @classmethod
    def _valid_renew_before(cls, value: str) -> str:
        if parse_duration(value).total_seconds() <= 0:
            raise ValueError("rotation.renewBefore must be longer than 0s")
        return value


class SecretKeyRef(_Model):
    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN, description="Secret in the token's namespace.")
    key: str = Field("token", max_length=253, description="Key in the Secret holding the existing key.")


class TokenImport(_Model):
    """Take over an existing key instead of minting one; only its hash is stored."""

    secret_ref: SecretKeyRef = Field(description="Where the existing key is.")


class _Expiring(_Model):
    expiration: str | None = Field(
        None, max_length=40, json_schema_extra={"pattern": EXPIRATION},
        description="When the token expires: a date yyyy-MM-dd (valid through the end of that day, UTC) "
                    "or an RFC 3339 time. At most one of expiration and ttl.")
    ttl: str | None = Field(
        None, max_length=32, json_schema_extra={"pattern": DURATION_PATTERN},
        description="Lifetime from issue, e.g. 24h or 90d. At most one of expiration and ttl.")

    @field_validator("expiration")
    @classmethod
    def _valid_expiration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_expiration(value)
        return value

    @field_validator("ttl")
    @classmethod
    def _valid_ttl(cls, value: str | None) -> str | None:
        if value is not None:
            ttl = parse_duration(value)
            if ttl <= timedelta(0):
                raise ValueError("ttl must be longer than 0s")
            if ttl > MAX_TTL:
                raise ValueError(f"ttl {value} is longer than the limit of {MAX_TTL.days}d; "
                                 "use a shorter ttl (rotation renews tokens that must live long)")
        return value

    @model_validator(mode="after")
    def _one_expiry(self):
        if self.expiration is not None and self.ttl is not None:
            raise ValueError("set at most one of spec.expiration and spec.ttl")
        rotation = getattr(self, "rotation", None)
        if rotation is not None:
            if self.ttl is None:
                raise ValueError("rotation needs spec.ttl: a fixed expiration date cannot be renewed")
            if parse_duration(rotation.renew_before) >= parse_duration(self.ttl):
                raise ValueError("rotation.renewBefore must be shorter than ttl")
        return self

    def expires_at(self, issued_at: datetime) -> datetime | None:
        """The instant the token stops being valid (exclusive), or None for never."""
        if self.expiration is not None:
            return parse_expiration(self.expiration)
        if self.ttl is not None:
            return issued_at + parse_duration(self.ttl)
        return None


def parse_expiration(text: str) -> datetime:
    """``yyyy-MM-dd`` is valid through that whole day in UTC, so it expires at the next
    day's 00:00:00Z; an RFC 3339 time expires at that instant."""
    try:
        if "T" not in text:
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1), time(), tzinfo=timezone.utc)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"invalid expiration {text!r}: use yyyy-MM-dd or an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise ValueError(f"expiration {text!r} needs a time zone, e.g. Z")
    return moment.astimezone(timezone.utc)


# -- specs -------------------------------------------------------------------

class ServiceAccountSpec(_Model):
    description: str | None = Field(None, max_length=1024, description="What the account is for.")
    disabled: bool = Field(False, description="A disabled account's tokens fail verification but are kept.")


class RoleBindingSpec(_Model):
    service_account_name: str = Field(
        max_length=253, pattern=DNS_SUBDOMAIN, json_schema_extra=_immutable("serviceAccountName"),
        description="The tokenwarden ServiceAccount (same namespace) that gets the roles.")
    roles: list[str] = Field(min_length=1, max_length=32, json_schema_extra={"x-kubernetes-list-type": "set"},
                             description="Role names from the operator's role catalog.")
    project: str | None = Field(None, max_length=253,
                                description="Grant the roles only within this project (all projects when unset).")

    @field_validator("roles")
    @classmethod
    def _role_names(cls, roles: list[str]) -> list[str]:
        return [_check_role(r) for r in roles]


def _check_role(role: str) -> str:
    import re

    if not re.fullmatch(ROLE_NAME, role) or len(role) > 63:
        raise ValueError(f"invalid role name {role!r}: lower-case letters, digits, '-' and ':'")
    return role


class ServiceTokenSpec(_Expiring):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "!(has(self.expiration) && has(self.ttl))",
         "message": "set at most one of spec.expiration and spec.ttl"},
        {"rule": "!has(self.rotation) || has(self.ttl)",
         "message": "rotation needs spec.ttl: a fixed expiration date cannot be renewed"},
        {"rule": "has(self.serviceAccountName) || (has(self.roles) && size(self.roles) > 0)",
         "message": "a token without spec.serviceAccountName needs spec.roles"},
        {"rule": "has(self.serviceAccountName) == has(oldSelf.serviceAccountName)",
         "message": "serviceAccountName cannot be added or removed; delete and re-create the token"},
        {"rule": "has(self.secretName) == has(oldSelf.secretName)",
         "message": "secretName cannot be added or removed; delete and re-create the token"},
    ]})

    service_account_name: str | None = Field(
        None, max_length=253, pattern=DNS_SUBDOMAIN, json_schema_extra=_immutable("serviceAccountName"),
        description="The tokenwarden ServiceAccount (same namespace) the token belongs to. "
                    "Without it the token stands alone and roles is required.")
    roles: list[str] | None = Field(
        None, max_length=32, json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Roles of the token: a subset of what the account is granted, or, without an "
                    "account, roles from the catalog. Unset: everything the account is granted.")
    description: str | None = Field(None, max_length=1024, description="What the token is for.")
    secret_name: str | None = Field(
        None, max_length=253, pattern=DNS_SUBDOMAIN, json_schema_extra=_immutable("secretName"),
        description="Secret the token is written to (key token). Default: the token's name.")
    secret_template: SecretTemplate | None = Field(None, description="Labels and annotations for the Secret.")
    rotation: Rotation | None = Field(None, description="Automatic rotation before expiry.")
    import_: TokenImport | None = Field(None, alias="import",
                                        description="Adopt an existing key instead of minting one.")

    @field_validator("roles")
    @classmethod
    def _role_names(cls, roles: list[str] | None) -> list[str] | None:
        return None if roles is None else [_check_role(r) for r in roles]

    @model_validator(mode="after")
    def _roles_or_account(self):
        if not self.service_account_name and not self.roles:
            raise ValueError("a token without spec.serviceAccountName needs spec.roles")
        return self


class IngestionAPIKeySpec(_Expiring):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "!(has(self.expiration) && has(self.ttl))",
         "message": "set at most one of spec.expiration and spec.ttl"},
        {"rule": "has(self.secretName) == has(oldSelf.secretName)",
         "message": "secretName cannot be added or removed; delete and re-create the key"},
        {"rule": "!has(self.rotation) || has(self.ttl)",
         "message": "rotation needs spec.ttl: a fixed expiration date cannot be renewed"}
    ]})

    description: str | None = Field(None, max_length=1024, description="What the key is for.")
    secret_name: str | None = Field(
        None, max_length=253, pattern=DNS_SUBDOMAIN, json_schema_extra=_immutable("secretName"),
        description="Secret the key is written to (key token). Default: the key's name.")
    secret_template: SecretTemplate | None = Field(None, description="Labels and annotations for the Secret.")
    rotation: Rotation | None = Field(None, description="Automatic rotation before expiry.")


# -- status ------------------------------------------------------------------

class Condition(_Model):
    type: str = Field(max_length=316, description="Condition type, e.g. Ready.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str | None = Field(None, max_length=1024, description="A CamelCase word for the cause.")
    message: str | None = Field(None, max_length=32768, description="What happened and what to do.")
    last_transition_time: str | None = Field(None, json_schema_extra={"format": "date-time"},
                                             description="When status last changed.")
    observed_generation: int | None = Field(None, description="The generation the condition is about.")


def _conditions():
    return Field(None, json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
                 description="Conditions; Ready tells whether the object works and why not.")


def _time(description: str):
    return Field(None, json_schema_extra={"format": "date-time"}, description=description)


Phase = Literal["Pending", "Active", "Expired", "Revoked", "Failed"]


def _bookkeeping():
    # kopf's progress and last-handled spec live here, in status, so that a reconcile writes
    # its bookkeeping in the same request as the status itself (no extra patch per object).
    return Field(None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True, "type": "object"},
                 description="The operator framework's bookkeeping (handler progress, last handled spec).")


class ServiceAccountStatus(_Model):
    kopf: dict[str, Any] | None = _bookkeeping()
    token_count: int | None = Field(None, description="How many ServiceTokens belong to the account.")
    observed_generation: int | None = Field(None, description="The generation last reconciled.")
    conditions: list[Condition] | None = _conditions()


class RoleBindingStatus(_Model):
    kopf: dict[str, Any] | None = _bookkeeping()
    observed_generation: int | None = Field(None, description="The generation last reconciled.")
    conditions: list[Condition] | None = _conditions()


class _TokenStatus(_Model):
    kopf: dict[str, Any] | None = _bookkeeping()
    phase: Phase | None = Field(None, description="Pending, Active, Expired, Revoked or Failed.")
    token_id: str | None = Field(None, max_length=32, description="Short public id, printed by list, accepted by delete.")
    token_hash: str | None = Field(None, pattern=TOKEN_HASH, description="sha256 of the whole token; never the token.")
    secret_name: str | None = Field(None, description="Secret holding the token (key token).")
    issued_at: str | None = _time("When the current token was minted.")
    expires_at: str | None = _time("When the token stops being valid.")
    last_used_at: str | None = _time("When the token was last verified (written in batches).")
    previous_token_hash: str | None = Field(None, pattern=TOKEN_HASH,
                                            description="Hash of the rotated-out token, valid until previousValidUntil.")
    previous_valid_until: str | None = _time("End of the rotation overlap.")
    rotated_at: str | None = _time("When the token was last rotated.")
    rotation_request: str | None = Field(None, max_length=253,
                                         description="The tokenwarden.io/rotate annotation value last acted on.")
    observed_generation: int | None = Field(None, description="The generation last reconciled.")
    conditions: list[Condition] | None = _conditions()


class ServiceTokenStatus(_TokenStatus):
    effective_roles: list[str] | None = Field(None, description="Roles the token carries now; role@project "
                                                                "when granted only within a project.")
    imported: bool | None = Field(None, description="True when the key was adopted, not minted.")


class IngestionAPIKeyStatus(_TokenStatus):
    pass
