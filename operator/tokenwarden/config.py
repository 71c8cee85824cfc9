"""One settings model for every tokenwarden process.

Settings come from a YAML file (the chart mounts its ConfigMap there), named by
``--config`` or ``TOKENWARDEN_CONFIG``; every field has a default, so a process
started with no file runs with the built-in role catalog and the quotas from
the seed products (50 accounts per namespace, 100 tokens per account).
"""
from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tokenwarden.durations import parse_duration

CONFIG_ENV = "TOKENWARDEN_CONFIG"


class Role(BaseModel):
    """A named set of permissions that bindings and tokens refer to."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    permissions: list[str] = Field(min_length=1)


def _default_roles() -> dict[str, Role]:
    return {
        "admin": Role(description="Everything, including managing tokens.", permissions=["*"]),
        "power-user": Role(
            description="Read, write and ingest data.", permissions=["read", "write", "ingest"]
        ),
        "writer": Role(description="Write and ingest data.", permissions=["write", "ingest"]),
        "profile-writer": Role(
            description="Send profiles (a profiling agent).", permissions=["write:profiles", "ingest"]
        ),
        "reader": Role(description="Read data.", permissions=["read"]),
    }


class Quotas(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    max_accounts_per_namespace: int = Field(50, ge=0, alias="maxAccountsPerNamespace")
    max_tokens_per_account: int = Field(100, ge=0, alias="maxTokensPerAccount")


class Prefixes(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    service_token: str = Field("twst", pattern=r"^[a-z][a-z0-9]{1,9}$", alias="serviceToken")
    ingestion_key: str = Field("twik", pattern=r"^[a-z][a-z0-9]{1,9}$", alias="ingestionKey")


class Bootstrap(BaseModel):
    """Where the Helm values' bootstrap token arrives: a Secret with keys token, roles, ttl."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    namespace: str | None = Field(
        default_factory=lambda: os.environ.get("POD_NAMESPACE") or None,
        description="Namespace of the bootstrap Secret (default: the operator's own, $POD_NAMESPACE).")
    secret_name: str = Field("tokenwarden-bootstrap", alias="secretName")
    token_name: str = Field("tokenwarden-bootstrap", alias="tokenName")
    min_length: int = Field(32, ge=16, alias="minLength")


class ImportKey(BaseModel):
    """The cluster key that imported keys are hashed with (HMAC-SHA256): a Secret in the
    operator's namespace, created by the operator when missing; the authenticator reads it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    namespace: str | None = Field(
        default_factory=lambda: os.environ.get("POD_NAMESPACE") or None,
        description="Namespace of the key's Secret (default: the operator's own, $POD_NAMESPACE).")
    secret_name: str = Field("tokenwarden-import-key", alias="secretName")


def _as_duration(cls, value: object) -> object:
    """A duration as users write it (24h, 90d) or a timedelta."""
    return parse_duration(value) if isinstance(value, str) else value


class WorkloadIdentitySettings(BaseModel):
    """How the authenticator checks Kubernetes service-account tokens (workload identity)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    enabled: bool = Field(True, description="Accept Kubernetes service-account tokens at /verify.")
    cache_ttl: timedelta = Field(timedelta(seconds=60), alias="cacheTTL",
                                 description="How long a TokenReview that authenticated is reused (at most 60s, "
                                             "never past the token's exp).")
    cache_size: int = Field(10000, ge=1, alias="cacheSize")
    negative_cache_ttl: timedelta = Field(timedelta(seconds=10), alias="negativeCacheTTL",
                                          description="How long a refused token is refused without asking again.")
    negative_cache_size: int = Field(10000, ge=1, alias="negativeCacheSize")
    reviews_per_second: float = Field(20.0, gt=0, alias="reviewsPerSecond",
                                      description="TokenReviews sent to kube-apiserver per second, at most.")
    review_burst: int = Field(40, ge=1, alias="reviewBurst",
                              description="TokenReviews that may be sent at once after a quiet spell.")
    review_wait: timedelta = Field(timedelta(seconds=2), alias="reviewWait",
                                   description="How long a request may wait for its namespace's turn at a "
                                               "TokenReview while they are scarce (then 429); 0s: not at all.")
    review_queue: int = Field(100, ge=1, alias="reviewQueue",
                              description="Requests of one namespace that may wait for a TokenReview at once.")

    _duration = field_validator("cache_ttl", "negative_cache_ttl", "review_wait", mode="before")(_as_duration)

    @field_validator("cache_ttl")
    @classmethod
    def _at_most_a_minute(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(seconds=60):
            raise ValueError("cacheTTL must be longer than 0s and at most 60s: a deleted Kubernetes "
                             "ServiceAccount's token stays valid for that long")
        return value


class ServerCertificate(BaseModel):
    """One server's certificate: the Secret it is served from, and (when ``generate``) the CA
    the operator keeps for it and the names it is issued for."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    generate: bool = Field(False, description="The operator makes the CA and the serving certificate, and renews "
                                              "the certificate (the chart's certificates mode `generated`).")
    secret_name: str = Field("", alias="secretName",
                             description="kubernetes.io/tls Secret with tls.crt, tls.key and ca.crt (the CA bundle).")
    ca_secret_name: str = Field("", alias="caSecretName", description="Secret holding the CA (generate only).")
    names: list[str] = Field(default_factory=list, description="DNS names and IP addresses; the first is the "
                                                               "common name (generate only).")

    @field_validator("names")
    @classmethod
    def _names_given(cls, value: list[str]) -> list[str]:
        return [name.strip() for name in value if name.strip()]


class WebhookCertificate(ServerCertificate):
    """The admission webhook's certificate; its CA bundle is injected into a ValidatingWebhookConfiguration."""

    configuration: str = Field("", description="ValidatingWebhookConfiguration whose caBundle the operator keeps "
                                               "equal to the Secret's ca.crt (empty: none).")


class AuthenticatorCertificate(ServerCertificate):
    """The authenticator's certificate; its CA bundle is published in a ConfigMap for clients to copy."""

    ca_config_map: str = Field("", alias="caConfigMap",
                               description="ConfigMap (key ca.crt) the CA bundle is published in (generate only).")


class Certificates(BaseModel):
    """The certificates the operator makes and renews at run time (never the chart at render time)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    namespace: str | None = Field(
        default_factory=lambda: os.environ.get("POD_NAMESPACE") or None,
        description="Namespace of the Secrets and the ConfigMap (default: the operator's own, $POD_NAMESPACE).")
    ca_lifetime: timedelta = Field(timedelta(days=3650), alias="caLifetime",
                                   description="Lifetime of a new CA: long, as copies of it sit in clients.")
    serving_lifetime: timedelta = Field(timedelta(days=90), alias="servingLifetime",
                                        description="Lifetime of a serving certificate.")
    renew_before: timedelta | None = Field(None, alias="renewBefore",
                                           description="Renew a serving certificate this long before it expires "
                                                       "(default: a third of servingLifetime).")
    ca_rotation_overlap: timedelta = Field(timedelta(days=7), alias="caRotationOverlap",
                                           description="How long a new CA is published before it signs, and a "
                                                       "replaced one after it stopped signing.")
    check_interval: timedelta = Field(timedelta(minutes=1), alias="checkInterval",
                                      description="How often the operator looks at its certificates.")
    webhook: WebhookCertificate = Field(default_factory=WebhookCertificate)
    authenticator: AuthenticatorCertificate = Field(default_factory=AuthenticatorCertificate)

    _duration = field_validator("ca_lifetime", "serving_lifetime", "renew_before", "ca_rotation_overlap",
                                "check_interval", mode="before")(_as_duration)

    @field_validator("ca_lifetime", "serving_lifetime", "ca_rotation_overlap", "check_interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0s, for example 90d")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Certificates:
        if self.renew_before is not None and not timedelta(0) < self.renew_before < self.serving_lifetime:
            raise ValueError(f"renewBefore ({self.renew_before}) must be longer than 0s and shorter than "
                             f"servingLifetime ({self.serving_lifetime}); leave it out for a third of it")
        if self.serving_lifetime >= self.ca_lifetime:
            raise ValueError(f"servingLifetime ({self.serving_lifetime}) must be shorter than caLifetime "
                             f"({self.ca_lifetime})")
        for server in (self.webhook, self.authenticator):
            if server.generate and not (server.secret_name and server.ca_secret_name and server.names):
                raise ValueError("a generated certificate needs secretName, caSecretName and names")
        return self

    @property
    def serving_renew_before(self) -> timedelta:
        from tokenwarden.policies._certificates import default_renew_before

        return self.renew_before or default_renew_before(self.serving_lifetime)


ROLE_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class Settings(BaseModel):
    """Everything an operator or authenticator may be configured with."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    roles: dict[str, Role] = Field(default_factory=_default_roles)
    quotas: Quotas = Field(default_factory=Quotas)
    prefixes: Prefixes = Field(default_factory=Prefixes)
    expired_retention: timedelta = Field(timedelta(hours=24), alias="expiredRetention")
    rotation_overlap: timedelta = Field(timedelta(hours=1), alias="rotationOverlap")
    # How often every token's decisions (revoke, roles, re-mint, rotate, overlap end) are
    # recomputed from a fresh listing, whatever events were seen or lost.
    resync_interval: timedelta = Field(timedelta(minutes=5), alias="resyncInterval")
    import_min_length: int = Field(16, ge=1, alias="importMinLength")
    bootstrap: Bootstrap = Field(default_factory=Bootstrap)
    import_key: ImportKey = Field(default_factory=ImportKey, alias="importKey")
    # A TokenReview that names no audience is answered for these; a token without
    # spec.audiences is valid for these only.
    audiences: list[str] = Field(default_factory=lambda: ["tokenwarden"], min_length=1)
    # Kubernetes service-account tokens are reviewed for these same audiences.
    workload_identity: WorkloadIdentitySettings = Field(default_factory=WorkloadIdentitySettings,
                                                        alias="workloadIdentity")
    certificates: Certificates = Field(default_factory=Certificates)

    @field_validator("roles")
    @classmethod
    def _role_names(cls, value: dict[str, Role]) -> dict[str, Role]:
        bad = [name for name in value if len(name) > 63 or not re.fullmatch(ROLE_NAME, name)]
        if bad:
            raise ValueError(f"role names {', '.join(map(repr, bad))} are not DNS labels: use lower-case "
                             "letters, digits and '-', at most 63 characters")
        return value

    _duration = field_validator("expired_retention", "rotation_overlap", "resync_interval",
                                mode="before")(_as_duration)

    @field_validator("resync_interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("resyncInterval must be longer than 0s, for example 5m")
        return value

    @field_validator("prefixes")
    @classmethod
    def _distinct_prefixes(cls, value: Prefixes) -> Prefixes:
        if value.service_token == value.ingestion_key:
            raise ValueError("prefixes.serviceToken and prefixes.ingestionKey must differ")
        return value


class ConfigError(Exception):
    """The configuration file is missing or invalid; the message says which and why."""


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read settings from ``path``, else from ``$TOKENWARDEN_CONFIG``, else defaults."""
    path = path or os.environ.get(CONFIG_ENV)
    if not path:
        return Settings()
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {file}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration {file} is not valid YAML: {exc}") from exc
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"configuration {file} is invalid: {problems}") from exc
