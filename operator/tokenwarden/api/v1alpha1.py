"""The four kinds of ``tokenwarden.io/v1alpha1`` as pydantic models.

These models are the single source of truth: the CRDs in ``crds/`` and the chart
are generated from them (``python -m tokenwarden.api``), and the operator and
the admission webhook parse every spec with them. Each constraint is written
once and lands in both places: the JSON-schema side (``pattern``, ``maxLength``,
CEL rules) is what the API server checks, the validators are what the webhook
and the operator check, with messages a person can act on.
"""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasGenerator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from tokenwarden.durations import DURATION_PATTERN, parse_duration

GROUP = "tokenwarden.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Role and project names are DNS labels: nothing in them can break the comma- and
# @-separated X-Auth-Roles header, and a UUID project id fits.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
ROLE_NAME = DNS_LABEL
PROJECT_NAME = DNS_LABEL
AUDIENCE = r"^[^\s,]+$"
# yyyy-MM-dd, or an RFC 3339 date-time with a mandatory offset (upper-case T and Z, as Python parses them).
EXPIRATION = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2}))?$"
# sha256:<hex> for a minted token (256 random bits need no salt); hmac-sha256:<hex> for an
# imported key, which a person may have chosen: keyed with the cluster's import key, so a
# status that leaks is no offline guessing oracle.
TOKEN_HASH = r"^(sha256|hmac-sha256):[0-9a-f]{64}$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"  # what the API server allows as a key of a Secret's data
MAX_TTL = timedelta(days=3650)


# -- field types: one constraint, checked by the API server and by pydantic ----

def _schema(**extra: Any) -> Any:
    """Schema-only keywords: the API server checks them; a validator gives pydantic's message."""
    return Field(json_schema_extra=extra)


def _dns_name(value: str) -> str:
    if not re.fullmatch(DNS_SUBDOMAIN, value):
        raise ValueError(f"invalid name {value!r}: use lower-case letters, digits, '-' and '.', "
                         "starting and ending with a letter or digit")
    return value


def _role_name(value: str) -> str:
    if not re.fullmatch(ROLE_NAME, value):
        raise ValueError(f"invalid role name {value!r}, not a DNS label: use lower-case letters, digits and '-', "
                         "starting and ending with a letter or digit (at most 63)")
    return value


def _project_name(value: str) -> str:
    if not re.fullmatch(PROJECT_NAME, value):
        raise ValueError(f"invalid project {value!r}, not a DNS label: use lower-case letters, digits and '-', "
                         "starting and ending with a letter or digit (at most 63; a UUID fits)")
    return value


def _audience(value: str) -> str:
    if not re.fullmatch(AUDIENCE, value):
        raise ValueError(f"invalid audience {value!r}: no spaces or commas")
    return value


def _secret_key(value: str) -> str:
    if not re.fullmatch(SECRET_KEY, value):
        raise ValueError(f"invalid Secret key {value!r}: use letters, digits, '-', '_' and '.'")
    return value


def _positive_duration(value: str) -> str:
    if parse_duration(value) <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


DNSName = Annotated[str, Field(max_length=253), _schema(pattern=DNS_SUBDOMAIN), AfterValidator(_dns_name)]
RoleName = Annotated[str, Field(max_length=63), _schema(pattern=ROLE_NAME), AfterValidator(_role_name)]
ProjectName = Annotated[str, Field(max_length=63), _schema(pattern=PROJECT_NAME), AfterValidator(_project_name)]
Audience = Annotated[str, Field(max_length=253), _schema(pattern=AUDIENCE), AfterValidator(_audience)]
Duration = Annotated[str, Field(max_length=32), _schema(pattern=DURATION_PATTERN),
                     AfterValidator(_positive_duration)]
Timestamp = Annotated[str, _schema(format="date-time")]
Phase = Literal["Pending", "Active", "Expired", "Revoked", "Failed"]


def parse_expiration(text: str) -> datetime:
    """When ``spec.expiration`` ends, in UTC; the instant itself is no longer valid.

    ``yyyy-MM-dd`` is valid through that whole day in UTC, so it ends at the next
    day's 00:00:00Z (exclusive); an RFC 3339 time ends at that instant.
    """
    try:
        if not re.fullmatch(EXPIRATION, text):
            raise ValueError
        if "T" not in text:
            return datetime.combine(date.fromisoformat(text) + timedelta(days=1), time(), tzinfo=timezone.utc)
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        raise ValueError(f"invalid expiration {text!r}: use yyyy-MM-dd or an RFC 3339 time "
                         "such as 2027-01-31T18:00:00Z") from None


def _check_expiration(value: str) -> str:
    parse_expiration(value)
    return value


def _check_ttl(value: str) -> str:
    if parse_duration(value) > MAX_TTL:
        raise ValueError(f"ttl {value} is longer than the limit of {MAX_TTL.days}d; "
                         "use a shorter ttl (rotation renews tokens that must live long)")
    return value


def _fixed_once_created(field: str) -> dict:
    """CEL on the parent object: ``field`` cannot be added, removed or changed after creation.

    A rule on the field itself only runs when both old and new objects have it, so it
    would let the field be added or removed; this one runs on every update of the parent.
    """
    return {"rule": f"has(self.{field}) == has(oldSelf.{field}) && "
                    f"(!has(self.{field}) || self.{field} == oldSelf.{field})",
            "message": f"{field} is immutable (cannot be added, changed or removed); "
                       "delete and re-create the object"}


def _immutable(field: str) -> dict:
    """CEL on a required field: it cannot change after creation."""
    return {"x-kubernetes-validations": [
        {"rule": "self == oldSelf", "message": f"{field} is immutable; delete and re-create the object"}]}


class _Model(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown spec fields are errors."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True,
                              alias_generator=AliasGenerator(alias=to_camel))


class _Status(_Model):
    # The API server prunes fields the schema does not list; tolerate what an older or newer
    # operator version may have written rather than failing to read a whole object.
    model_config = ConfigDict(extra="ignore")


# -- pieces shared by ServiceToken and IngestionAPIKey ------------------------

class SecretTemplate(_Model):
    """Labels and annotations added to the Secret that holds the credential."""

    labels: dict[str, str] | None = Field(None, description="Labels added to the Secret.")
    annotations: dict[str, str] | None = Field(None, description="Annotations added to the Secret.")


class RestartTarget(_Model):
    """A workload in the same namespace that mounts the Secret."""

    kind: Literal["Deployment", "DaemonSet", "StatefulSet"] = Field(
        description="Kind of the workload: Deployment, DaemonSet or StatefulSet.")
    name: DNSName = Field(description="Name of the workload (same namespace).")


class Rotation(_Model):
    """Mint a successor before expiry and roll the workloads that mount the Secret."""

    renew_before: Duration = Field(
        description="How long before expiresAt a new token replaces the old one in the Secret, e.g. 7d.")
    restart_targets: list[RestartTarget] | None = Field(
        None, max_length=20,
        description="Workloads rollout-restarted (as kubectl rollout restart does) when the token changes.")


class SecretKeyRef(_Model):
    """A key of a Secret in the same namespace."""

    name: DNSName = Field(description="Name of the Secret (same namespace).")
    key: Annotated[str, Field(max_length=253), _schema(pattern=SECRET_KEY), AfterValidator(_secret_key)] = Field(
        "token", description="Key in the Secret that holds the existing token. Default: token.")
    namespace: DNSName | None = Field(
        None, description="Optional, and if set it must be the token's own namespace: a key is never imported "
                          "from another namespace (the request is refused with a reason).")


IMPORT_NO_ROTATION = ("an imported key is rotated by its owner, by changing the source Secret; "
                      "remove spec.rotation")


class TokenImport(_Model):
    """Take over an existing token instead of minting one; only its hash is stored."""

    secret_ref: SecretKeyRef = Field(description="Where the existing token is.")


_CREDENTIAL_RULES = [
    {"rule": "!(has(self.expiration) && has(self.ttl))",
     "message": "set at most one of spec.expiration and spec.ttl"},
    {"rule": "!has(self.rotation) || has(self.ttl)",
     "message": "rotation needs spec.ttl: a fixed expiration date cannot be renewed"},
    _fixed_once_created("secretName"),
]


class _CredentialSpec(_Model):
    """What ServiceToken and IngestionAPIKey specs share: expiry, Secret, rotation."""

    description: str | None = Field(None, max_length=1024, description="What the credential is for.")
    expiration: Annotated[str, Field(max_length=40), _schema(pattern=EXPIRATION),
                          AfterValidator(_check_expiration)] | None = Field(
        None, description="When the credential expires: a date yyyy-MM-dd (valid through the end of that day, "
                    "UTC) or an RFC 3339 time such as 2027-01-31T18:00:00Z. At most one of expiration and "
                    "ttl; with neither, the credential does not expire.")
    ttl: Annotated[Duration, AfterValidator(_check_ttl)] | None = Field(
        None, description="Lifetime from issue, e.g. 24h or 90d (units s, m, h, d, w). "
                          "At most one of expiration and ttl.")
    secret_name: DNSName | None = Field(
        None, description="Secret the credential is written to (key token). Default: the object's name. "
                          "Cannot be changed after creation.")
    secret_template: SecretTemplate | None = Field(None, description="Labels and annotations for the Secret.")
    rotation: Rotation | None = Field(None, description="Automatic rotation before expiry; needs ttl.")

    @model_validator(mode="after")
    def _expiry_rules(self):
        if self.expiration is not None and self.ttl is not None:
            raise ValueError("set at most one of spec.expiration and spec.ttl")
        if self.rotation is not None:
            if self.ttl is None:
                raise ValueError("rotation needs spec.ttl: a fixed expiration date cannot be renewed")
            if parse_duration(self.rotation.renew_before) >= parse_duration(self.ttl):
                raise ValueError("rotation.renewBefore must be shorter than ttl")
        return self

    def expires_at(self, issued_at: datetime) -> datetime | None:
        """The instant the credential stops being valid (exclusive), or None for never.

        ``expiration`` as ``yyyy-MM-dd`` ends at the next day's 00:00:00Z; an RFC 3339
        ``expiration`` at that instant; ``ttl`` at ``issued_at + ttl``.
        """
        if self.expiration is not None:
            return parse_expiration(self.expiration)
        if self.ttl is not None:
            return issued_at + parse_duration(self.ttl)
        return None


# -- specs -------------------------------------------------------------------

MAX_WORKLOAD_IDENTITIES = 32


class WorkloadIdentity(_Model):
    """A Kubernetes ServiceAccount of the same namespace whose tokens authenticate as the account."""

    service_account_name: DNSName = Field(
        description="Name of a Kubernetes ServiceAccount in the same namespace. Its pods authenticate with a "
                    "projected service-account token for the authenticator's audience (default tokenwarden), "
                    "and get this account's roles.")


class ServiceAccountSpec(_Model):
    """Desired state of a ServiceAccount."""

    description: str | None = Field(None, max_length=1024, description="What the account is for.")
    disabled: bool = Field(False, description="A disabled account's tokens and workload identities fail "
                                              "verification but are kept. Default: false.")
    workload_identities: list[WorkloadIdentity] | None = Field(
        None, max_length=MAX_WORKLOAD_IDENTITIES,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["serviceAccountName"]},
        description="Kubernetes ServiceAccounts of the same namespace that authenticate as this account with "
                    "their own service-account tokens: nothing is minted or stored. The account's bindings, "
                    "disabled flag and deletion apply to them as to its tokens.")

    @model_validator(mode="after")
    def _distinct_workloads(self):
        names = [w.service_account_name for w in self.workload_identities or ()]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"spec.workloadIdentities names {', '.join(duplicates)} more than once; "
                             "list each Kubernetes ServiceAccount once")
        return self


class RoleBindingSpec(_Model):
    """Desired state of a RoleBinding."""

    service_account_name: DNSName = Field(
        json_schema_extra=_immutable("serviceAccountName"),
        description="The tokenwarden ServiceAccount (same namespace) that gets the roles. Cannot be changed.")
    roles: list[RoleName] = Field(
        min_length=1, max_length=32, json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Role names from the operator's role catalog.")
    project: ProjectName | None = Field(
        None, description="Grant the roles only within this project (all projects when unset). A DNS label "
                          "such as team-a or a UUID.")


class ServiceTokenSpec(_CredentialSpec):
    """Desired state of a ServiceToken."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        *_CREDENTIAL_RULES,
        {"rule": "has(self.serviceAccountName) || (has(self.roles) && size(self.roles) > 0)",
         "message": "a token without spec.serviceAccountName needs spec.roles"},
        _fixed_once_created("serviceAccountName"),
        # CEL escapes the reserved word: spec.import is self.__import__.
        {"rule": "!has(self.__import__) || !has(self.rotation)", "message": IMPORT_NO_ROTATION},
        {"rule": "has(self.__import__) == has(oldSelf.__import__)",
         "message": "spec.import cannot be added or removed: a token is either minted or imported; "
                    "delete and re-create the object"},
    ]})

    service_account_name: DNSName | None = Field(
        None, description="The tokenwarden ServiceAccount (same namespace) the token belongs to. Without it "
                          "the token stands alone and roles is required. Cannot be changed after creation.")
    roles: list[RoleName] | None = Field(
        None, max_length=32, json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Roles of the token: a subset of what the account is granted, or, without an account, "
                    "roles from the catalog. Unset: everything the account is granted.")
    import_: TokenImport | None = Field(None, alias="import",
                                        description="Adopt an existing token instead of minting one.")
    audiences: list[Audience] | None = Field(
        None, max_length=16, json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Audiences the token is valid for in a Kubernetes TokenReview. Unset: only the "
                    "authenticator's default audience.")

    @model_validator(mode="after")
    def _roles_or_account(self):
        if not self.service_account_name and not self.roles:
            raise ValueError("a token without spec.serviceAccountName needs spec.roles")
        if self.import_ is not None and self.rotation is not None:
            raise ValueError(IMPORT_NO_ROTATION)
        return self


class IngestionAPIKeySpec(_CredentialSpec):
    """Desired state of an IngestionAPIKey."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _CREDENTIAL_RULES})

    project: ProjectName | None = Field(
        None, description="The one project the key may send data to. Unset: every project.")


# -- status ------------------------------------------------------------------

class Condition(_Status):
    """A Kubernetes-style condition; Ready says whether the object works and, if not, why."""

    type: str = Field(max_length=316, description="Condition type, e.g. Ready.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str | None = Field(None, max_length=1024, description="A CamelCase word for the cause.")
    message: str | None = Field(None, max_length=32768, description="What happened and what to do.")
    last_transition_time: Timestamp | None = Field(None, description="When status last changed.")
    observed_generation: int | None = Field(None, description="The generation the condition is about.")


def _conditions() -> Any:
    return Field(None, json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
                 description="Conditions; Ready tells whether the object works and why not.")


def _bookkeeping() -> Any:
    # kopf's progress and last-handled spec live here, in status, so that a reconcile writes
    # its bookkeeping in the same request as the status itself (no extra patch per object).
    # Its shape is kopf's, not ours: the one place the schema preserves unknown fields.
    return Field(None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True, "type": "object"},
                 description="The operator framework's bookkeeping (handler progress, last handled spec).")


def _generation() -> Any:
    return Field(None, description="The generation last reconciled.")


class ServiceAccountStatus(_Status):
    """Observed state of a ServiceAccount, written by the operator."""

    kopf: dict[str, Any] | None = _bookkeeping()
    token_count: int | None = Field(None, description="How many ServiceTokens belong to the account.")
    workload_identities: int | None = Field(
        None, description="How many of spec.workloadIdentities are bound: listed, and the Kubernetes "
                          "ServiceAccount exists. The WorkloadIdentitiesBound condition names any that do not.")
    last_used_at: Timestamp | None = Field(None, description="When a workload identity of the account was last "
                                                             "verified (written in batches).")
    effective_roles: list[str] | None = Field(None, description="Roles the account's bindings grant, which its "
                                                                "workload identities carry; role@project when "
                                                                "granted only within a project. Set while the "
                                                                "account lists workload identities.")
    observed_generation: int | None = _generation()
    conditions: list[Condition] | None = _conditions()


class RoleBindingStatus(_Status):
    """Observed state of a RoleBinding, written by the operator."""

    kopf: dict[str, Any] | None = _bookkeeping()
    observed_generation: int | None = _generation()
    conditions: list[Condition] | None = _conditions()


class _CredentialStatus(_Status):
    kopf: dict[str, Any] | None = _bookkeeping()
    phase: Phase | None = Field(None, description="Pending, Active, Expired, Revoked or Failed.")
    token_id: str | None = Field(None, max_length=32, description="Short public id, printed by list, "
                                                                  "accepted by delete.")
    token_hash: str | None = Field(None, pattern=TOKEN_HASH, description="sha256 of the whole token (an "
                                                                         "imported key: HMAC-SHA256 under the "
                                                                         "cluster's import key); never the "
                                                                         "token.")
    secret_name: str | None = Field(None, max_length=253, description="Secret holding the token (key token).")
    issued_at: Timestamp | None = Field(None, description="When the current token was minted.")
    expires_at: Timestamp | None = Field(None, description="When the token stops being valid.")
    last_used_at: Timestamp | None = Field(None, description="When the token was last verified "
                                                             "(written in batches).")
    previous_token_hash: str | None = Field(None, pattern=TOKEN_HASH, description="Hash of the rotated-out "
                                                                                  "token, valid until "
                                                                                  "previousValidUntil.")
    previous_valid_until: Timestamp | None = Field(None, description="End of the rotation overlap.")
    rotated_at: Timestamp | None = Field(None, description="When the token was last rotated.")
    rotation_request: str | None = Field(None, max_length=253,
                                         description="The tokenwarden.io/rotate annotation value last acted on.")
    observed_generation: int | None = _generation()
    conditions: list[Condition] | None = _conditions()


class ServiceTokenStatus(_CredentialStatus):
    """Observed state of a ServiceToken, written by the operator."""

    effective_roles: list[str] | None = Field(None, description="Roles the token carries now; role@project "
                                                                "when granted only within a project.")
    imported: bool | None = Field(None, description="True when the token was adopted, not minted.")
    account_uid: str | None = Field(None, alias="accountUID", max_length=64,
                                    description="uid of the ServiceAccount the token was minted for: a token "
                                                "never outlives its account, nor passes to one re-created "
                                                "under the same name.")


class IngestionAPIKeyStatus(_CredentialStatus):
    """Observed state of an IngestionAPIKey, written by the operator."""


class TokenUsageStatus(_Status):
    """When each credential of the namespace was last verified, as the authenticator saw it."""

    service_tokens: dict[str, Timestamp] | None = Field(
        None, description="ServiceToken name → when it was last verified.")
    ingestion_api_keys: dict[str, Timestamp] | None = Field(
        None, alias="ingestionAPIKeys", description="IngestionAPIKey name → when it was last verified.")
    service_accounts: dict[str, Timestamp] | None = Field(
        None, description="ServiceAccount name → when one of its workload identities was last verified.")


# -- the kinds ----------------------------------------------------------------
# A whole object as the API server returns it. The class docstring is the kind's
# description in the CRD; the spec and status field descriptions are theirs.

_SHORT_NAME = {"rule": "size(self.metadata.name) <= 63",
               "message": "metadata.name must be at most 63 characters: it is a label value on the Secret"}


class _Object(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    api_version: Literal["tokenwarden.io/v1alpha1"] = Field(API_VERSION, alias="apiVersion")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")


class ServiceAccount(_Object):
    """A tokenwarden identity that owns tokens and receives roles through RoleBindings
    (not Kubernetes' own ServiceAccount)."""

    kind: Literal["ServiceAccount"] = "ServiceAccount"
    spec: ServiceAccountSpec = Field(default_factory=ServiceAccountSpec, description=ServiceAccountSpec.__doc__)
    status: ServiceAccountStatus | None = Field(None, description=ServiceAccountStatus.__doc__)


class RoleBinding(_Object):
    """Grants roles from the catalog to one ServiceAccount, optionally only within one project."""

    kind: Literal["RoleBinding"] = "RoleBinding"
    spec: RoleBindingSpec = Field(description=RoleBindingSpec.__doc__)
    status: RoleBindingStatus | None = Field(None, description=RoleBindingStatus.__doc__)


class ServiceToken(_Object):
    """One credential, minted into a Secret (key token); the object holds only its hash."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_SHORT_NAME]})

    kind: Literal["ServiceToken"] = "ServiceToken"
    spec: ServiceTokenSpec = Field(description=ServiceTokenSpec.__doc__)
    status: ServiceTokenStatus | None = Field(None, description=ServiceTokenStatus.__doc__)


class IngestionAPIKey(_Object):
    """A key that only lets agents send data (the ingest permission), minted into a Secret."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_SHORT_NAME]})

    kind: Literal["IngestionAPIKey"] = "IngestionAPIKey"
    spec: IngestionAPIKeySpec = Field(default_factory=IngestionAPIKeySpec, description=IngestionAPIKeySpec.__doc__)
    status: IngestionAPIKeyStatus | None = Field(None, description=IngestionAPIKeyStatus.__doc__)


class TokenUsage(_Object):
    """Last use of the namespace's credentials, written by the authenticator (one object per
    namespace, named tokenwarden-usage). It authorises nothing: the operator copies it into
    each credential's status.lastUsedAt."""

    kind: Literal["TokenUsage"] = "TokenUsage"
    status: TokenUsageStatus | None = Field(None, description=TokenUsageStatus.__doc__)
