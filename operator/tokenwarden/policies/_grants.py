"""Who may grant what: the RBAC permissions that creating or changing an object needs.

As Kubernetes refuses a RoleBinding to anyone who may not ``bind`` its role, granting a
tokenwarden role needs ``bind`` on ``roles.tokenwarden.io`` named after it, granting within
a project needs ``use`` on ``projects.tokenwarden.io`` named after it (with no name: every
project), making a token valid for an audience beyond the settings' defaults needs ``use`` on
``audiences.tokenwarden.io`` named after it (an audience is what a TokenReview client trusts a
token for: kube-apiserver's own would let the token log in to Kubernetes), and importing a
key needs ``get`` on the Secret it is read from. Pure: the caller
asks the API server (a SubjectAccessReview) whether the requester holds each permission.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tokenwarden import reasons
from tokenwarden.policies._roles import Problem

GROUP = "tokenwarden.io"


@dataclass(frozen=True, order=True)
class Permission:
    """``verb`` on ``resource`` of API ``group`` ("" is the core group), on the object
    ``name``, or on every object of the resource when ``name`` is empty."""

    verb: str
    group: str
    resource: str
    name: str = ""

    def describe(self) -> str:
        resource = f"{self.resource}.{self.group}" if self.group else self.resource
        target = f'"{self.name}"' if self.name else "with no name (every one)"
        return f"{self.verb} on {resource} {target} ({self.purpose()})"

    def purpose(self) -> str:
        if self.resource == "roles":
            return f"to grant role {self.name}"
        if self.resource == "projects":
            return f"to grant within project {self.name}" if self.name else "to grant in every project"
        if self.resource == "audiences":
            return f"to make a token valid for audience {self.name}"
        return f"to import a key from Secret {self.name}"

    def rule(self) -> str:
        """The RBAC rule that allows it, as YAML flow."""
        names = f", resourceNames: [{self.name}]" if self.name else ""
        return f'{{apiGroups: ["{self.group}"], resources: [{self.resource}], verbs: [{self.verb}]{names}}}'


@dataclass(frozen=True)
class Grant:
    """``role`` within ``project`` (None: every project). An ingestion key grants a project
    and no role."""

    role: str | None
    project: str | None

    def permissions(self) -> tuple[Permission, ...]:
        use = Permission("use", GROUP, "projects", self.project or "")
        return (Permission("bind", GROUP, "roles", self.role), use) if self.role else (use,)


@dataclass(frozen=True)
class SecretRead:
    """Reading Secret ``name`` on the requester's behalf (an import)."""

    name: str

    def permissions(self) -> tuple[Permission, ...]:
        return (Permission("get", "", "secrets", self.name),)


@dataclass(frozen=True)
class AudienceUse:
    """A token valid for ``audience``, one the settings do not give every token."""

    audience: str

    def permissions(self) -> tuple[Permission, ...]:
        return (Permission("use", GROUP, "audiences", self.audience),)


Access = Grant | SecretRead | AudienceUse


def binding_grants(roles: Iterable[str], project: str | None) -> frozenset[Access]:
    return frozenset(Grant(role, project) for role in roles)


def token_grants(roles: Iterable[str] | None, account: str | None, imported: str | None,
                 audiences: Iterable[str] | None = None, default_audiences: Iterable[str] = ()) -> frozenset[Access]:
    """A token of an account grants nothing of its own (its roles are a subset of the
    account's bindings, each checked when it was made); a standalone one grants its roles
    in every project. Either kind grants each audience it names beyond the defaults."""
    granted: set[Access] = set() if account else {Grant(role, None) for role in roles or ()}
    if imported:
        granted.add(SecretRead(imported))
    granted.update(AudienceUse(audience) for audience in audiences or () if audience not in set(default_audiences))
    return frozenset(granted)


def key_grants(project: str | None) -> frozenset[Access]:
    return frozenset({Grant(None, project)})


def needed_permissions(new: frozenset[Access], old: frozenset[Access] = frozenset()) -> list[Permission]:
    """What the requester must hold: the permissions of what ``new`` grants and ``old`` did
    not (on create, ``old`` is empty). A role added within a project needs ``bind`` on it
    and ``use`` on the project again; a change that grants nothing new needs nothing, even
    from someone who has since lost a permission."""
    return sorted({permission for access in new - old for permission in access.permissions()})


def grant_refused(user: str, namespace: str, kind: str, missing: list[Permission]) -> Problem:
    """The refusal for ``user``, naming each missing permission and the rule that grants it."""
    listed = "; ".join(p.describe() for p in missing)
    rules = ", ".join(p.rule() for p in missing)
    return Problem(reasons.GRANT_NOT_ALLOWED,
                   f"user {user!r} may not create or change this {kind} in namespace {namespace!r}: missing "
                   f"{listed}. A cluster admin can allow it with a Role in {namespace!r} (or a ClusterRole) "
                   f"bound to the user, with the rules {rules}")


def grant_unchecked(detail: str) -> Problem:
    """Refusal when the permissions could not be checked at all: never allow unchecked."""
    return Problem(reasons.GRANT_NOT_CHECKED,
                   f"refused because the requester's permissions could not be checked ({detail}); try again, "
                   "and if this persists make sure the operator may create subjectaccessreviews "
                   "(authorization.k8s.io) and reach the API server")
