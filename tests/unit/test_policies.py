from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
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


@pytest.mark.parametrize("spec, deleting, expected", [
    ({"serviceAccountName": "a", "roles": ["writer"]}, False, ("a", Binding(("writer",)))),
    ({"serviceAccountName": "a", "roles": ["writer", "reader"], "project": "shop"}, False,
     ("a", Binding(("writer", "reader"), "shop"))),
    ({"serviceAccountName": "a", "roles": ["writer"]}, True, None),  # being deleted
    ({"serviceAccountName": "a", "roles": ["writer", "root"]}, False, None),  # one unknown role: the whole binding
    ({"serviceAccountName": "a", "roles": []}, False, None),
    ({"roles": ["writer"]}, False, None),
])
def test_what_a_binding_grants(spec, deleting, expected):
    assert policies.binding_grant(spec, CATALOG, deleting=deleting) == expected


@pytest.mark.parametrize("requested, account, bindings, expected", [
    (["reader", "writer"], None, [], ["reader", "writer"]),
    (["writer"], None, [], ["writer"]),  # a standalone token's spec.roles shrank: cut at once
    (["writer", "root"], None, [], []),  # the same rule as a binding's: an unknown role, nothing
    ([], None, [], []),
    (None, "agents", [Binding(("writer",)), Binding(("reader",), "shop")], ["reader@shop", "writer"]),
    (None, "agents", [], []),  # its only binding gone
    (["writer", "reader"], "agents", [Binding(("writer",))], []),  # a request no longer granted: nothing
    (["reader"], "agents", [Binding(("reader",), "shop")], ["reader@shop"]),
])
def test_the_roles_a_minted_token_carries(requested, account, bindings, expected):
    assert policies.token_roles(requested, CATALOG, account=account, bindings=bindings) == expected


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


@dataclass(frozen=True)
class Seat:
    name: str
    phase: str | None = "Active"
    ready_reason: str | None = "Minted"
    created: str = "2026-01-01T00:00:00Z"


def _at(minute: int) -> str:
    return f"2026-01-01T00:{minute:02d}:00Z"


def test_account_quota_message_names_the_limit():
    assert account_quota_problem(49, 50) is None
    assert "at most 50" in account_quota_problem(50, 50).message


@pytest.mark.parametrize("others, created, over", [
    ([], _at(5), False),
    ([Seat("a", created=_at(1)), Seat("b", created=_at(2))], _at(5), False),
    ([Seat("a", created=_at(1)), Seat("b", created=_at(2)), Seat("c", created=_at(3))], _at(5), True),
    # Created before the others: the first two are within the quota, whoever came later.
    ([Seat("a", created=_at(6)), Seat("b", created=_at(7)), Seat("c", created=_at(8))], _at(5), False),
    # Same second: the name decides, so every replica agrees.
    ([Seat("a", created=_at(5)), Seat("b", created=_at(5))], _at(5), False),
    ([Seat("a", created=_at(5)), Seat("b", created=_at(5)), Seat("c", created=_at(5))], _at(5), False),
    ([Seat("a", created=_at(1)), Seat("b", created=_at(5)), Seat("ba", created=_at(5))], _at(5), True),
    ([Seat("a", created=_at(1)), Seat("b", created=_at(5)), Seat("c", created=_at(5))], _at(5), False),
    # An admission request (not stored yet): every other account is ahead.
    ([Seat("a", created=_at(6)), Seat("b", created=_at(7))], None, False),
    ([Seat("a", created=_at(6)), Seat("b", created=_at(7)), Seat("c", created=_at(8))], None, True),
])
def test_account_over_quota(others, created, over):
    # "bz" sorts after a, b and c within the same second.
    problem = policies.account_over_quota(others, "bz", created, 3)
    assert (problem is not None) == over
    if over:
        assert "maxAccountsPerNamespace" in problem.message


WAITING = dict(phase="Pending", ready_reason="QuotaExceeded")
FRESH = dict(phase=None, ready_reason=None)


@pytest.mark.parametrize("others, created, over", [
    ([Seat("a"), Seat("b")], _at(5), False),
    ([Seat("a"), Seat("b"), Seat("c")], _at(5), True),
    # Only what can still verify counts.
    ([Seat("a"), Seat("b"), Seat("c", phase="Failed", ready_reason="SecretConflict")], _at(5), False),
    ([Seat("a"), Seat("b"), Seat("c", phase="Expired", ready_reason="Expired")], _at(5), False),
    ([Seat("a"), Seat("b"), Seat("c", phase="Revoked", ready_reason="AccountDeleted")], _at(5), False),
    # Disabled with its account: verifies again once enabled, so it counts.
    ([Seat("a"), Seat("b"), Seat("c", ready_reason="AccountDisabled")], _at(5), True),
    # Waiting on its account, binding or source: admitted, mints the moment they appear.
    ([Seat("a"), Seat("b"), Seat("c", phase="Pending", ready_reason="NoRolesGranted")], _at(5), True),
    # Waiting for room: queued in creation order, so only one takes one place.
    ([Seat("a"), Seat("b"), Seat("c", created=_at(6), **WAITING)], _at(5), False),
    ([Seat("a"), Seat("b"), Seat("c", created=_at(4), **WAITING)], _at(5), True),
    ([Seat("a"), Seat("b"), Seat("c", created=_at(4), **FRESH)], _at(5), True),
    ([Seat("a"), Seat("b"), Seat("c", created=_at(6), **FRESH)], _at(5), False),
    ([Seat("a"), Seat("c", created=_at(6), **WAITING), Seat("d", created=_at(7), **FRESH)], _at(5), False),
    # Waiting for its account to be within the account quota: queued too.
    ([Seat("a"), Seat("b"), Seat("c", created=_at(4), phase="Pending", ready_reason="AccountQuotaExceeded")],
     _at(5), True),
    # An admission request: every queued token is ahead of it.
    ([Seat("a"), Seat("b"), Seat("c", created=_at(6), **WAITING)], None, True),
    ([Seat("a"), Seat("b"), Seat("c", phase="Failed", ready_reason="InvalidSpec")], None, False),
    # Its own entry never counts.
    ([Seat("a"), Seat("b"), Seat("me")], _at(5), False),
])
def test_token_quota(others, created, over):
    problem = token_quota_problem(others, "me", created, 3, "agents")
    assert (problem is not None) == over
    if over:
        assert problem.waiting and problem.reason == "QuotaExceeded"
        assert "agents" in problem.message and "at most 3" in problem.message
        assert "maxTokensPerAccount" in problem.message and "do not count" in problem.message


def test_a_token_of_an_account_beyond_its_quota_waits():
    problem = policies.waiting_for_account_quota("agents", account_quota_problem(3, 3))
    assert problem.waiting and problem.reason == "AccountQuotaExceeded"
    assert "agents" in problem.message and "maxAccountsPerNamespace" in problem.message


@pytest.mark.parametrize("token, reason", [
    (None, "BootstrapTokenMissing"),
    ("", "BootstrapTokenMissing"),
    ("short", "BootstrapTokenTooShort"),
    ("a" * 40, "BootstrapTokenPlaceholder"),
    ("ab" * 20, "BootstrapTokenWeak"),
    ("<paste the output of: openssl rand -hex 32>", "BootstrapTokenPlaceholder"),
    ("replace-me-with-openssl-rand-hex-32-output-000000", "BootstrapTokenPlaceholder"),
    ("${BOOTSTRAP_TOKEN}-0f3a9c2e7b1d4a8f6e5c0b9d", "BootstrapTokenPlaceholder"),
    ("{{ .Values.token }}0f3a9c2e7b1d4a8f6e5c0b9d", "BootstrapTokenPlaceholder"),
    ("0123456789abcdef0123456789abcdefXYZ", "BootstrapTokenPlaceholder"),
    ("zyxwvutsrq-0f3a9c2e7b1d4a8f6e5c0b9d7a6f", "BootstrapTokenPlaceholder"),
    ("ChangeMe-0f3a9c2e7b1d4a8f6e5c0b9d7a6f", "BootstrapTokenPlaceholder"),
    ("9f3a c2e7b1d4a8f6e5c0b9d7a6f1e2d3c4b5a6", "BootstrapTokenWeak"),
])
def test_weak_bootstrap_tokens(token, reason):
    from tokenwarden.policies import bootstrap_token_problem

    assert bootstrap_token_problem(token, 32).reason == reason


def test_strong_bootstrap_token_and_role_lists():
    from tokenwarden.policies import bootstrap_token_problem, parse_roles

    assert bootstrap_token_problem("9f8e7d6c5b4a3210fedcba9876543210abcd", 32).reason == "BootstrapTokenPlaceholder"
    for _ in range(200):  # what the docs say to run: openssl rand -hex 32, or base64 less =+/
        assert bootstrap_token_problem(secrets.token_hex(32), 32) is None
        assert bootstrap_token_problem(base64.b64encode(secrets.token_bytes(32)).decode().translate(
            str.maketrans("", "", "=+/")), 32) is None
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


def test_the_bootstrap_token_is_the_operators_only_by_the_uid_it_recorded():
    from tokenwarden.policies import bootstrap_token_is_ours, foreign_bootstrap_problem

    assert bootstrap_token_is_ours("uid-1", "uid-1")
    assert not bootstrap_token_is_ours("uid-1", None)
    assert not bootstrap_token_is_ours("uid-1", "uid-2")
    assert not bootstrap_token_is_ours(None, None)
    problem = foreign_bootstrap_problem("tokenwarden", "tokenwarden-bootstrap")
    assert "kubectl delete servicetoken tokenwarden-bootstrap -n tokenwarden" in problem.message
    assert "bootstrap.tokenName" in problem.message
