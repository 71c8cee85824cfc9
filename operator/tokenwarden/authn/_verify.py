"""Decide whether a token may do what a request asks: pure, clock injected."""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from tokenwarden.authn._index import Identity, TokenIndex
from tokenwarden.config import Role
from tokenwarden.tokens import MAX_TOKEN_LENGTH, TokenFormatError, parse_token

INGEST = "ingest"
# Project names are DNS labels (the schema says so): a request naming anything else names
# no project any credential can hold, and its value must never reach X-Auth-Project.
PROJECT = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(slots=True)  # not frozen: a frozen dataclass costs a microsecond more per request to build
class Verdict:
    status: int                   # 200, 401 or 403
    reason: str                   # a metric label: ok, malformed, unknown, expired, ...
    identity: Identity | None = None
    roles: tuple[str, ...] = ()
    project: str | None = None    # a project the credential is authorised for, for X-Auth-Project
    audiences: tuple[str, ...] = ()  # a TokenReview's: the requested ones the token is valid for
    via: str | None = None        # workload:<Kubernetes ServiceAccount> for a workload identity

    @property
    def allowed(self) -> bool:
        return self.status == 200


def permissions_of(identity: Identity, catalog: Mapping[str, Role], project: str | None,
                   roles: tuple[str, ...] | None = None) -> set[str]:
    """Permissions the identity holds, globally or within ``project``, with ``roles`` (None:
    ``identity.roles``, a workload's)."""
    if identity.kind == "IngestionAPIKey":
        return {INGEST}
    granted: set[str] = set()
    for role in identity.roles if roles is None else roles:
        name, _, scope = role.partition("@")
        if scope and scope != project:
            continue
        if name in catalog:
            granted.update(catalog[name].permissions)
    return granted


def _permits(granted: set[str], required: str) -> bool:
    if "*" in granted or required in granted:
        return True
    # "write" covers "write:profiles"
    return required.partition(":")[0] in granted


def verify(
    token: str | None,
    index: TokenIndex,
    catalog: Mapping[str, Role],
    *,
    now: datetime,
    prefixes: tuple[str, ...],
    permission: str | None = None,
    project: str | None = None,
    audiences: Sequence[str] | None = None,
    default_audiences: Sequence[str] = ("tokenwarden",),
) -> Verdict:
    """Whether ``token`` may do ``permission`` within ``project``. With ``audiences`` (a
    Kubernetes TokenReview; empty: ``default_audiences``), whether it authenticates to
    Kubernetes for one of them."""
    if not token:
        return Verdict(401, "missing")
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii() or not token.isprintable():
        return Verdict(401, "malformed")
    identity = index.lookup(token)
    if identity is None:
        # Name the refusal: a string with our prefix and a wrong checksum is a mistyped or
        # truncated token. (A valid token is found by its hash, so it needs no checksum check.)
        if token.partition("_")[0] in prefixes:
            try:
                parse_token(token, prefixes)
            except TokenFormatError:
                return Verdict(401, "malformed")
        return Verdict(401, "unknown")
    if identity.leaked:  # refused from the moment the leak is recorded, operator or not
        return Verdict(401, "leaked", identity)
    if identity.deleting:  # refused from the moment deletion begins, whoever finishes it
        return Verdict(401, "deleted", identity)
    if identity.phase != "Active":
        return Verdict(401, (identity.phase or "pending").lower(), identity)
    if identity.expires_at is not None and now >= identity.expires_at:
        return Verdict(401, "expired", identity)
    if identity.previous_valid_until is not None and now >= identity.previous_valid_until:
        return Verdict(401, "rotated", identity)
    if identity.account:
        # An account gone, being deleted or re-created under its name (another uid) revokes its
        # tokens here, before the operator marks them; a token not yet bound to a uid is
        # refused only while its account is missing or going.
        account = index.account_of(identity)
        if account is None or account.deleting or (identity.account_uid and identity.account_uid != account.uid):
            return Verdict(401, "revoked", identity)
        if account.disabled:
            return Verdict(401, "disabled", identity)
    # Roles from the objects watched now (the token's spec, its account's bindings), never from
    # a status the operator may not have written yet: a binding deleted grants nothing at once.
    roles = index.roles_of(identity) if identity.kind == "ServiceToken" else ()
    if audiences is not None:
        return _review(identity, audiences or default_audiences, default_audiences, roles)
    return authorize(identity, catalog, permission, project, roles=roles)


def authorize(identity: Identity, catalog: Mapping[str, Role], permission: str | None, project: str | None,
              via: str | None = None, roles: tuple[str, ...] | None = None) -> Verdict:
    """Whether a valid credential's ``identity``, carrying ``roles`` (None: ``identity.roles``,
    a workload's), may do ``permission`` within ``project``."""
    if project is not None and not PROJECT.fullmatch(project):
        return Verdict(403, "project", identity)
    if identity.kind != "IngestionAPIKey":  # a ServiceToken, or a workload: its account's roles
        if roles is None:
            roles = identity.roles
        if project is not None:
            in_project = [r for r in roles if "@" not in r or r.endswith(f"@{project}")]
            if not in_project:
                return Verdict(403, "project", identity)
    else:
        if identity.project and project not in (None, identity.project):
            return Verdict(403, "project", identity)
        project = project or identity.project
        roles = (INGEST,)
    if permission and not _permits(permissions_of(identity, catalog, project, roles), permission):
        return Verdict(403, "permission", identity)
    return Verdict(200, "ok", identity, roles, project, via=via)


def _review(identity: Identity, requested: Sequence[str], default_audiences: Sequence[str],
            roles: tuple[str, ...]) -> Verdict:
    """A Kubernetes identity for a valid credential carrying ``roles``: service tokens only, and
    only for an audience the token carries (its ``spec.audiences``, or else the default ones)."""
    if identity.kind != "ServiceToken":
        return Verdict(403, "not-kubernetes", identity)
    valid_for = identity.audiences or tuple(default_audiences)
    matching = tuple(a for a in dict.fromkeys(requested) if a in valid_for)
    if not matching:
        return Verdict(403, "audience", identity)
    return Verdict(200, "ok", identity, roles, None, matching)
