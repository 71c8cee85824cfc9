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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
