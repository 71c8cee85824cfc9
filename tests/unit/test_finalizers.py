"""Tokens carry no finalizer: no handler asks kopf for one, and a deleted token's daemons
stop on its DELETED event instead."""
from __future__ import annotations

from types import SimpleNamespace

import kopf

from tokenwarden.handlers import (  # noqa: F401  (registration, as the operator imports them)
    _expiry,
    _mint,
    _revoke,
    _rotation,
)


def _registry() -> kopf.OperatorRegistry:
    registry = kopf.get_default_registry()
    _revoke.without_finalizers(registry)
    return registry


def test_no_handler_asks_for_a_finalizer():
    registry = _registry()
    daemons = registry._spawning._handlers
    assert daemons, "the expiry daemons at least"
    assert not any(h.requires_finalizer for h in daemons)
    assert not any(h.requires_finalizer for h in registry._changing._handlers)


def test_a_deleted_tokens_daemons_stop_matching():
    expire = next(h for h in _registry()._spawning._handlers if h.id == "expire")
    memo = SimpleNamespace(deleted_tokens={})
    active = dict(spec={}, status={"phase": "Active", "expiresAt": "2030-01-01T00:00:00Z"}, memo=memo)
    assert expire.when(uid="u-1", **active)
    _revoke._remember_deleted(memo, "u-1")
    assert not expire.when(uid="u-1", **active)
    assert expire.when(uid="u-2", **active)
    assert not expire.when(uid="u-2", **{**active, "status": {"phase": "Pending"}})


def test_deleted_uids_are_forgotten_after_a_while(monkeypatch):
    memo = SimpleNamespace(deleted_tokens={})
    clock = iter([100.0, 100.0 + _revoke.FORGET_DELETED_AFTER + 1])
    monkeypatch.setattr(_revoke.time, "monotonic", lambda: next(clock))
    _revoke._remember_deleted(memo, "old")
    _revoke._remember_deleted(memo, "new")
    assert set(memo.deleted_tokens) == {"new"}
