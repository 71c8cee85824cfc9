"""Which roles a token carries: its own ``roles`` or all its account is granted.

The operator (status.effectiveRoles, minting) and the authenticator (every verification)
decide with the same functions here, each from the objects it sees: a binding that is gone
or being deleted grants nothing, whether or not the operator has written any status since.
"""
from __future__ import annotations

from collections.abc import Collection, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass

from tokenwarden import reasons


@dataclass(frozen=True)
class Problem:
    """Why something cannot be done now. ``waiting`` problems may resolve by themselves
    (an account or binding that has not arrived yet); the others need the user."""

    reason: str
    message: str
    waiting: bool = False


@dataclass(frozen=True)
class Binding:
    """What one valid RoleBinding grants."""

    roles: tuple[str, ...]
    project: str | None = None


@dataclass(frozen=True)
class RolePlan:
    effective_roles: list[str]


def scoped(role: str, project: str | None) -> str:
    """``writer`` everywhere, or ``writer@project`` within one project."""
    return f"{role}@{project}" if project else role


def unknown_roles(roles: Iterable[str], catalog: Container[str]) -> list[str]:
    return sorted({r for r in roles if r not in catalog})


def catalog_roles(roles: Sequence[str], catalog: Container[str]) -> tuple[str, ...]:
    """What a grant (a RoleBinding's ``roles``, a standalone token's ``spec.roles``) carries:
    all of its roles, or none when one is outside the catalog. Dropped whole rather than cut
    to the known ones: the Ready condition names the unknown role and says the object grants
    nothing until fixed, and a role removed from the catalog takes its grants with it."""
    roles = tuple(roles)
    return roles if all(map(catalog.__contains__, roles)) else ()


def binding_grant(spec: Mapping, catalog: Container[str], *, deleting: bool) -> tuple[str, Binding] | None:
    """The account a RoleBinding grants to, and what; None when it grants nothing: being
    deleted (a ``deletionTimestamp``, whoever's finalizer holds it), naming no account or no
    role, or naming a role outside the catalog (catalog_roles)."""
    account = spec.get("serviceAccountName")
    roles = catalog_roles(spec.get("roles") or (), catalog)
    if deleting or not account or not roles:
        return None
    return account, Binding(roles=roles, project=spec.get("project") or None)


def token_roles(requested: Sequence[str] | None, catalog: Collection[str], *, account: str | None,
                bindings: Iterable[Binding]) -> list[str]:
    """The roles a minted token carries now (``account``: its existing account, whose
    ``bindings`` are those binding_grant kept): plan_roles' roles, or none where plan_roles
    finds a problem, as the operator then writes into status.effectiveRoles."""
    plan = plan_roles(list(requested or ()) or None, catalog, account=account, account_exists=True,
                      bindings=bindings)
    return [] if isinstance(plan, Problem) else plan.effective_roles


def granted_roles(bindings: Iterable[Binding]) -> list[str]:
    """Every role the bindings grant, project-scoped ones as ``role@project``, sorted.

    A role granted everywhere makes the same role's project grants redundant.
    """
    everywhere = {r for b in bindings if not b.project for r in b.roles}
    scoped_grants = {scoped(r, b.project) for b in bindings if b.project for r in b.roles
                     if r not in everywhere}
    return sorted(everywhere | scoped_grants)


def plan_roles(
    requested: list[str] | None,
    catalog: Collection[str],
    *,
    account: str | None,
    account_exists: bool,
    bindings: Iterable[Binding],
) -> RolePlan | Problem:
    """A token's effective roles, or the problem that stops it from being minted."""
    if requested:
        missing = unknown_roles(requested, catalog)
        if missing:
            return Problem(reasons.UNKNOWN_ROLE,
                           f"role {', '.join(missing)} is not in the role catalog "
                           f"(known: {', '.join(sorted(catalog))}); fix spec.roles")
    if account is None:
        if not requested:
            return Problem(reasons.NO_ROLES, "a token without spec.serviceAccountName needs spec.roles")
        return RolePlan(sorted(set(requested)))
    if not account_exists:
        return Problem(reasons.ACCOUNT_NOT_FOUND,
                       f"ServiceAccount {account!r} does not exist in this namespace; create it "
                       "(the token is minted as soon as it exists)", waiting=True)
    granted = granted_roles(bindings)
    if not requested:
        if not granted:
            return Problem(reasons.NO_ROLES_GRANTED,
                           f"no RoleBinding grants any role to ServiceAccount {account!r}; "
                           "create one (the token is minted as soon as it exists)", waiting=True)
        return RolePlan(granted)
    plain = {g for g in granted if "@" not in g}
    effective = []
    not_granted = []
    for role in sorted(set(requested)):
        if role in plain:
            effective.append(role)
            continue
        in_projects = [g for g in granted if g.startswith(f"{role}@")]
        if in_projects:
            effective.extend(in_projects)
        else:
            not_granted.append(role)
    if not_granted:
        return Problem(reasons.ROLES_NOT_GRANTED,
                       f"role {', '.join(not_granted)} is not granted to ServiceAccount "
                       f"{account!r}; bind it with a RoleBinding or remove it from spec.roles",
                       waiting=True)
    return RolePlan(effective)
