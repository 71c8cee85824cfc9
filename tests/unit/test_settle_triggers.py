"""What account and binding events ask to be settled: a listing's events nothing (its resync
decides), a status write nothing, a change the tokens of each account it touches."""
from __future__ import annotations

from types import SimpleNamespace

import kopf
import pytest

from tokenwarden.handlers import _settle


def _body(name: str, spec: dict, uid: str = "u1", deleting: bool = False) -> kopf.Body:
    meta = {"name": name, "namespace": "team", "uid": uid}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return kopf.Body({"metadata": meta, "spec": spec, "status": {}})


@pytest.fixture
def settled(monkeypatch):
    asked: list[str] = []
    monkeypatch.setattr(_settle, "request_account_tokens", lambda memo, namespace, account: asked.append(account))
    return asked


def _memo() -> SimpleNamespace:
    return SimpleNamespace(account_states={}, binding_states={})


async def _binding(memo, type, spec, **kwargs):
    body = _body("b", spec, **kwargs)
    await _settle.binding_changed(type=type, body=body, name="b", namespace="team", memo=memo)


async def _account(memo, type, spec, **kwargs):
    body = _body("a", spec, **kwargs)
    await _settle.account_changed(type=type, body=body, name="a", namespace="team", memo=memo)


async def test_a_listed_binding_settles_nothing_and_its_status_writes_neither(settled):
    memo = _memo()
    await _binding(memo, None, {"serviceAccountName": "a", "roles": ["reader"]})
    await _binding(memo, "MODIFIED", {"serviceAccountName": "a", "roles": ["reader"]})  # its status written
    assert settled == []
    await _binding(memo, "MODIFIED", {"serviceAccountName": "a", "roles": ["writer"]})
    assert settled == ["a"]


async def test_a_binding_moved_to_another_account_settles_both(settled):
    memo = _memo()
    await _binding(memo, None, {"serviceAccountName": "a", "roles": ["reader"]})
    await _binding(memo, "MODIFIED", {"serviceAccountName": "b", "roles": ["reader"]})
    assert sorted(settled) == ["a", "b"]


async def test_a_binding_created_or_deleted_settles_its_account(settled):
    memo = _memo()
    await _binding(memo, "ADDED", {"serviceAccountName": "a", "roles": ["reader"]})
    await _binding(memo, "DELETED", {"serviceAccountName": "a", "roles": ["reader"]})
    assert settled == ["a", "a"]
    assert memo.binding_states == {}


async def test_a_binding_recreated_under_its_name_settles_again(settled):
    memo = _memo()
    await _binding(memo, None, {"serviceAccountName": "a", "roles": ["reader"]})
    await _binding(memo, "ADDED", {"serviceAccountName": "a", "roles": ["reader"]}, uid="u2")
    assert settled == ["a"]


async def test_a_listed_account_settles_nothing_until_it_changes(settled):
    memo = _memo()
    await _account(memo, None, {})
    await _account(memo, "MODIFIED", {})  # its token count written to its status
    assert settled == []
    await _account(memo, "MODIFIED", {"disabled": True})
    await _account(memo, "MODIFIED", {"disabled": True}, deleting=True)
    await _account(memo, "DELETED", {"disabled": True}, deleting=True)
    assert settled == ["a", "a", "a"]
