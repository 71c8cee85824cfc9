"""What the token reconciler writes for an edit the model refuses and for a quota, decided
from the indexes alone (no API call is made on these paths)."""
from __future__ import annotations

import logging
from types import SimpleNamespace

import kopf
import pytest

from tokenwarden.config import Settings
from tokenwarden.handlers._indexes import Indexes
from tokenwarden.handlers._mint import reconcile_token
from tokenwarden.handlers._token_kinds import INGESTION_KEY, SERVICE_TOKEN

from ..support_events import events_off

MINTED = {"phase": "Active", "tokenHash": "sha256:" + "0" * 64, "observedGeneration": 1,
          "conditions": [{"type": "Ready", "status": "True", "reason": "Minted", "message": "token 1 is in Secret",
                          "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
INVALID = {"ttl": "1h", "rotation": {"renewBefore": "2h"}}


@pytest.fixture(autouse=True)
def no_events():
    """kopf.warn outside a running operator: events off."""
    with events_off():
        yield


def token(name: str, spec: dict, status: dict | None = None, created: str = "2026-01-01T00:05:00Z",
          kind: str = "ServiceToken") -> dict:
    return {"apiVersion": "tokenwarden.io/v1alpha1", "kind": kind,
            "metadata": {"name": name, "namespace": "team", "uid": f"uid-{name}", "generation": 2,
                         "creationTimestamp": created},
            "spec": spec, "status": status or {}}


def account(name: str, created: str) -> dict:
    return {"kind": "ServiceAccount", "metadata": {"name": name, "namespace": "team", "uid": f"uid-{name}",
                                                   "creationTimestamp": created}, "spec": {}}


def memo(*objects: dict) -> SimpleNamespace:
    settings = Settings.model_validate({"quotas": {"maxAccountsPerNamespace": 2, "maxTokensPerAccount": 2}})
    indexes = Indexes(settings.roles)
    for body in objects:
        indexes.observe(body["kind"], body)
    return SimpleNamespace(settings=settings, indexes=indexes, core=NoApi(), custom=NoApi())


class ReachedApi(Exception):
    pass


class NoApi:
    """Any API call: the decision let the token through to minting."""

    def __getattr__(self, name):
        raise ReachedApi(name)


def reconcile(body: dict, state: SimpleNamespace, kind=SERVICE_TOKEN) -> dict:
    patch = kopf.Patch()
    reconcile_token(kind, kopf.Body(body), patch, state, logging.getLogger("test"))
    return dict(patch.get("status") or {})


def ready(status: dict) -> dict:
    return next(c for c in status["conditions"] if c["type"] == "Ready")


@pytest.mark.parametrize("kind, spec", [(SERVICE_TOKEN, {"roles": ["reader"]}), (INGESTION_KEY, {})])
def test_an_edit_the_model_refuses_leaves_a_minted_token_active(kind, spec):
    status = reconcile(token("t", {**spec, **INVALID}, MINTED, kind=kind.resource.kind), memo(), kind)
    assert "phase" not in status and "tokenHash" not in status  # still Active, same token
    assert "observedGeneration" not in status  # the last spec applied is still generation 1
    condition = ready(status)
    assert (condition["status"], condition["reason"], condition["observedGeneration"]) == ("False", "InvalidSpec", 2)
    assert "(generation 2) was not applied" in condition["message"]
    assert "renewBefore must be shorter than ttl" in condition["message"]
    assert "keeps verifying" in condition["message"]


def test_an_invalid_spec_never_minted_fails_with_the_models_message():
    status = reconcile(token("t", {"roles": ["reader"], **INVALID}), memo())
    assert status["phase"] == "Failed"
    assert ready(status)["reason"] == "InvalidSpec"
    assert "renewBefore must be shorter than ttl" in ready(status)["message"]


def _agents(*tokens: dict) -> SimpleNamespace:
    binding = {"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "team", "uid": "uid-b"},
               "spec": {"serviceAccountName": "agents", "roles": ["reader"]}}
    return memo(account("agents", "2026-01-01T00:00:00Z"), binding, *tokens)


def test_a_token_over_quota_waits_pending_and_mints_when_another_stops_counting():
    active = [token(n, {"serviceAccountName": "agents"}, MINTED, created="2026-01-01T00:01:00Z") for n in ("a", "b")]
    late = token("late", {"serviceAccountName": "agents"})
    status = reconcile(late, _agents(*active, late))
    assert status["phase"] == "Pending"
    assert ready(status)["reason"] == "QuotaExceeded"
    assert "at most 2" in ready(status)["message"] and "maxTokensPerAccount" in ready(status)["message"]
    assert "tokenHash" not in status

    # One of them failed: it will never verify, so it no longer counts, and the waiting token
    # gets past the quota (to minting, which needs the API server from here).
    active[1]["status"] = {**MINTED, "phase": "Failed"}
    with pytest.raises(ReachedApi):
        reconcile({**late, "status": status}, _agents(*active, late))


def test_a_token_of_an_account_over_the_account_quota_waits():
    state = memo(account("first", "2026-01-01T00:00:00Z"), account("second", "2026-01-01T00:00:01Z"),
                 account("agents", "2026-01-01T00:00:02Z"),
                 {"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "team", "uid": "uid-b"},
                  "spec": {"serviceAccountName": "agents", "roles": ["reader"]}})
    status = reconcile(token("t", {"serviceAccountName": "agents"}), state)
    assert status["phase"] == "Pending"
    assert ready(status)["reason"] == "AccountQuotaExceeded"
    assert "maxAccountsPerNamespace" in ready(status)["message"]


class Stored:
    """get_namespaced_custom_object from the objects given."""

    def __init__(self, *objects: dict) -> None:
        self.objects = {o["metadata"]["name"]: o for o in objects}

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        return self.objects[name]


def test_room_goes_to_the_first_created_of_the_waiting_tokens(monkeypatch):
    from tokenwarden.handlers import _quota

    waiting = {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False", "reason": "QuotaExceeded"}]}
    active = [token(n, {"serviceAccountName": "agents"}, MINTED, created="2026-01-01T00:01:00Z") for n in ("a", "b")]
    queue = [token("later", {"serviceAccountName": "agents"}, waiting, created="2026-01-01T00:07:00Z"),
             token("late", {"serviceAccountName": "agents"}, waiting, created="2026-01-01T00:06:00Z"),
             token("last", {"serviceAccountName": "agents"}, waiting, created="2026-01-01T00:08:00Z")]
    state = _agents(*active, *queue)
    state.custom = Stored(*queue)
    looked_at = []
    monkeypatch.setattr(_quota, "reconcile_now", lambda kind, body, memo, logger: looked_at.append(body))
    _quota.mint_waiting(state, "team", "agents", logging.getLogger("test"))
    assert [t["metadata"]["name"] for t in looked_at] == []  # two of two places held

    state.indexes.observe("ServiceToken", {**active[0], "status": {**MINTED, "phase": "Expired"}})
    _quota.mint_waiting(state, "team", "agents", logging.getLogger("test"))
    assert [t["metadata"]["name"] for t in looked_at] == ["late"]


def resume_without_calls(body: dict, state: SimpleNamespace) -> dict:
    patch = kopf.Patch()
    reconcile_token(SERVICE_TOKEN, kopf.Body(body), patch, state, logging.getLogger("test"), resuming=True,
                    blocking=False)
    return dict(patch.get("status") or {})


def test_a_restart_resumes_a_minted_unchanged_token_without_a_call():
    """The resume handler decides in the event loop: nothing to write, and no call made."""
    state = memo(account("a", "2026-01-01T00:00:00Z"))
    minted = {**MINTED, "observedGeneration": 2, "effectiveRoles": ["reader"], "accountUID": "uid-a",
              "issuedAt": "2026-01-01T00:06:00Z"}
    body = token("t", {"serviceAccountName": "a", "roles": ["reader"]}, minted)
    state.indexes.observe("RoleBinding", {"kind": "RoleBinding", "metadata": {
        "name": "b", "namespace": "team", "uid": "uid-b"}, "spec": {"serviceAccountName": "a", "roles": ["reader"]}})
    assert resume_without_calls(body, state) == {}


@pytest.mark.parametrize("status", [{}, {**MINTED, "observedGeneration": 1}], ids=["pending", "edited-while-down"])
def test_a_resume_that_needs_a_call_says_so_having_written_nothing(status):
    from tokenwarden.handlers._mint import CallsTheAPI

    state = memo(account("a", "2026-01-01T00:00:00Z"))
    patch = kopf.Patch()
    with pytest.raises(CallsTheAPI):
        reconcile_token(SERVICE_TOKEN, kopf.Body(token("t", {"roles": ["reader"]}, status)), patch, state,
                        logging.getLogger("test"), resuming=True, blocking=False)
    assert dict(patch) == {}
