"""Tokens carry no finalizer: no handler asks kopf for one. Tokens have no kopf daemons or
timers either (their timers are the operator's own scheduler's), so kopf keeps no live body
of an idle token between its events."""
from __future__ import annotations

import kopf

from tokenwarden.handlers import (  # noqa: F401  (registration, as the operator imports them)
    _expiry,
    _mint,
    _quota,
    _revoke,
    _rotation,
    _schedule,
    _settle,
)
from tokenwarden.kube._resources import INGESTION_KEYS, SERVICE_TOKENS


def _registry() -> kopf.OperatorRegistry:
    registry = kopf.get_default_registry()
    _revoke.without_finalizers(registry)
    return registry


def test_no_handler_asks_for_a_finalizer():
    registry = _registry()
    spawning = registry._spawning._handlers
    assert spawning, "the accounts' quota timer at least"
    assert not any(h.requires_finalizer for h in spawning)
    assert not any(h.requires_finalizer for h in registry._changing._handlers)


def test_tokens_have_no_daemons_or_timers_of_kopf():
    """kopf keeps the whole body of every object of a kind with daemons or timers, whether one
    runs or not: token timers are kept by handlers/_schedule.py instead."""
    plurals = {h.selector.plural or h.selector.any_name for h in _registry()._spawning._handlers}
    assert plurals and not plurals & {SERVICE_TOKENS.plural, INGESTION_KEYS.plural}, plurals
