from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tokenwarden import policies
from tokenwarden.config import Settings
from tokenwarden.policies import (
    Binding,
    Problem,
    RolePlan,
    account_quota_problem,
    granted_roles,
    plan_roles,
    token_quota_problem,
)

CATALOG = Settings().roles


def plan(requested, account="agents", exists=True, bindings=()):
    return plan_roles(requested, CATALOG, account=account, account_exists=exists, bindings=bindings)


@pytest.mark.parametrize("bindings, expected", [
    ([], []),
    ([Binding(("writer",))], ["writer"]),
    ([Binding(("writer",), "shop"), Binding(("reader",))], ["reader", "writer@shop"]),
    ([Binding(("writer",), "shop"), Binding(("writer",))], ["writer"]),
    ([Binding(("writer", "reader"), "a"), Binding(("writer",), "b")], ["reader@a", "writer@a", "writer@b"]),
])
def test_granted_roles(bindings, expected):
    assert granted_roles(bindings) == expected


@pytest.mark.parametrize("requested, account, exists, bindings, expected", [
    (["reader"], None, False, [], RolePlan(["reader"])),
    (None, "agents", True, [Binding(("writer",))], RolePlan(["writer"])),
    (["writer"], "agents", True, [Binding(("writer", "reader"))], RolePlan(["writer"])),
    (["writer"], "agents", True, [Binding(("writer",), "shop")], RolePlan(["writer@shop"])),
])
def test_plan_roles_grants(requested, account, exists, bindings, expected):
    assert plan(requested, account, exists, bindings) == expected


@pytest.mark.parametrize("requested, account, exists, bindings, reason, waiting", [
    (["root"], None, False, [], "UnknownRole", False),
    (None, None, False, [], "NoRoles", False),
    (None, "agents", False, [], "AccountNotFound", True),
    (None, "agents", True, [], "NoRolesGranted", True),
    (["admin"], "agents", True, [Binding(("reader",))], "RolesNotGranted", True),
])
def test_plan_roles_problems(requested, account, exists, bindings, reason, waiting):
    problem = plan(requested, account, exists, bindings)
    assert isinstance(problem, Problem)
    assert (problem.reason, problem.waiting) == (reason, waiting)


def test_problem_messages_name_the_fix():
    problem = plan(["root"], None, False)
    assert "root" in problem.message and "spec.roles" in problem.message
    problem = plan(["admin"], "agents", True, [Binding(("reader",))])
    assert "admin" in problem.message and "RoleBinding" in problem.message


def test_quotas():
    assert account_quota_problem(49, 50) is None
    assert "at most 50" in account_quota_problem(50, 50).message
    assert token_quota_problem(99, 100, "a") is None
    problem = token_quota_problem(100, 100, "agents")
    assert "agents" in problem.message and "maxTokensPerAccount" in problem.message


@pytest.mark.parametrize("token, reason", [
    (None, "BootstrapTokenMissing"),
    ("", "BootstrapTokenMissing"),
    ("short", "BootstrapTokenTooShort"),
    ("a" * 40, "BootstrapTokenWeak"),
    ("abcdefghijklmnop qrstuvwxyz0123456789", "BootstrapTokenWeak"),
])
def test_weak_bootstrap_tokens(token, reason):
    from tokenwarden.policies import bootstrap_token_problem

    assert bootstrap_token_problem(token, 32).reason == reason


def test_strong_bootstrap_token_and_role_lists():
    from tokenwarden.policies import bootstrap_token_problem, parse_roles

    assert bootstrap_token_problem("9f8e7d6c5b4a3210fedcba9876543210abcd", 32) is None
    assert parse_roles("a,b") == ["a", "b"]
    assert parse_roles("[power-user, 'reader']") == ["power-user", "reader"]
    assert parse_roles("- power-user\n- reader\n") == ["power-user", "reader"]
    assert parse_roles("") == []


@pytest.mark.parametrize("reported, current, created, expected", [
    ("2026-11-24T11:00:00Z", None, None, "2026-11-24T11:00:00+00:00"),
    ("2026-11-24T11:00:00Z", "2026-11-24T10:00:00Z", "2026-11-01T00:00:00Z", "2026-11-24T11:00:00+00:00"),
    ("2026-11-24T12:04:00Z", None, None, "2026-11-24T12:04:00+00:00"),  # within clock skew
    ("2026-11-24T10:00:00Z", "2026-11-24T11:00:00Z", None, None),       # never back
    ("2026-11-24T11:00:00Z", "2026-11-24T11:00:00Z", None, None),       # nothing new
    ("2999-01-01T00:00:00Z", None, None, None),                         # never into the future
    ("2026-10-01T00:00:00Z", None, "2026-11-01T00:00:00Z", None),       # before the credential existed
    ("yesterday", None, None, None),
    ("2026-11-24T11:00:00", None, None, None),                          # no offset
    (42, None, None, None),
])
def test_last_use_only_moves_forward_to_a_time_that_can_be(reported, current, created, expected):
    now = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
    moved = policies.last_use_update(reported, current, created, now)
    assert (moved.isoformat() if moved else None) == expected
