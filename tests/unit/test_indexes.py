"""The operator's in-memory indexes: what each kind puts where, and replacement per object."""
from __future__ import annotations

import pytest

from tokenwarden.handlers._indexes import AccountEntry, Index, Indexes, TokenEntry, waiting
from tokenwarden.policies import Binding


def body(kind: str, name: str, uid: str, spec: dict | None = None, status: dict | None = None,
         namespace: str = "team", **meta) -> dict:
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace, "uid": uid, **meta},
            "spec": spec or {}, "status": status or {}}


def test_an_object_replaces_its_own_keys_and_leaves_others():
    index = Index()
    index.replace("u1", {"a": 1, "b": 1})
    index.replace("u2", {"a": 2})
    index.replace("u1", {"c": 3})
    assert sorted(index.get("a")) == [2]
    assert "b" not in index and index.get("b") == []
    assert index.get("c") == [3]
    index.replace("u2", None)
    assert "a" not in index
    assert index.counts() == {"c": 1}


def test_tokens_are_found_by_account_hash_import_and_owner():
    indexes = Indexes(["reader", "writer"])
    indexes.observe("ServiceToken", body(
        "ServiceToken", "t1", "uid-1", spec={"serviceAccountName": "agents", "roles": ["reader"]},
        status={"phase": "Active", "tokenHash": "sha256:aa", "effectiveRoles": ["reader"],
                "conditions": [{"type": "Ready", "status": "True", "reason": "Minted"}]}))
    indexes.observe("ServiceToken", body(
        "ServiceToken", "t2", "uid-2", spec={"import": {"secretRef": {"name": "legacy"}}}))
    indexes.observe("IngestionAPIKey", body("IngestionAPIKey", "k1", "uid-3", status={"phase": "Active"}))

    assert indexes.tokens.get(("team", "agents")) == [TokenEntry("t1", "Active", ("reader",), ("reader",), "Minted")]
    assert indexes.hashes.get("sha256:aa") == [("team", "t1")]
    assert indexes.imports.get(("team", "legacy")) == ["t2"]
    assert all(uid in indexes.owners for uid in ("uid-1", "uid-2", "uid-3"))
    assert indexes.phases.counts() == {("ServiceToken", "Active"): 1, ("ServiceToken", "Pending"): 1,
                                       ("IngestionAPIKey", "Active"): 1}

    indexes.observe("ServiceToken", body("ServiceToken", "t1", "uid-1"), deleted=True)
    assert ("team", "agents") not in indexes.tokens
    assert "sha256:aa" not in indexes.hashes and "uid-1" not in indexes.owners


def test_a_changed_token_moves_between_phases_and_accounts():
    indexes = Indexes(["reader"])
    indexes.observe("ServiceToken", body("ServiceToken", "t", "u", spec={"serviceAccountName": "a"}))
    indexes.observe("ServiceToken", body("ServiceToken", "t", "u", spec={"serviceAccountName": "b"},
                                         status={"phase": "Expired"}))
    assert indexes.tokens.get(("team", "a")) == []
    assert [e.phase for e in indexes.tokens.get(("team", "b"))] == ["Expired"]
    assert indexes.phases.counts() == {("ServiceToken", "Expired"): 1}


def test_accounts_count_per_namespace_and_leave_when_deleting():
    indexes = Indexes(["reader"])
    indexes.observe("ServiceAccount", body("ServiceAccount", "a", "ua", spec={"disabled": True}))
    indexes.observe("ServiceAccount", body("ServiceAccount", "b", "ub"))
    assert indexes.accounts.get(("team", "a")) == [AccountEntry("a", True, uid="ua")]
    assert len(indexes.accounts.get("team")) == 2
    indexes.observe("ServiceAccount", body("ServiceAccount", "b", "ub", deletionTimestamp="2026-01-01T00:00:00Z"))
    assert ("team", "b") not in indexes.accounts


def test_bindings_with_a_role_outside_the_catalog_grant_nothing():
    indexes = Indexes(["reader"])
    indexes.observe("RoleBinding", body("RoleBinding", "ok", "u1",
                                        spec={"serviceAccountName": "a", "roles": ["reader"], "project": "p"}))
    indexes.observe("RoleBinding", body("RoleBinding", "bad", "u2",
                                        spec={"serviceAccountName": "b", "roles": ["reader", "admin"]}))
    assert indexes.bindings.get(("team", "a")) == [Binding(roles=("reader",), project="p")]
    assert ("team", "b") not in indexes.bindings


def test_a_binding_being_deleted_grants_nothing():
    """A deletionTimestamp, whoever's finalizer holds the binding: new tokens are not minted
    with its roles, and the account's tokens lose them."""
    indexes = Indexes(["reader"])
    binding = body("RoleBinding", "held", "u1", spec={"serviceAccountName": "a", "roles": ["reader"]},
                   finalizers=["example.com/hold"])
    indexes.observe("RoleBinding", binding)
    assert indexes.bindings.get(("team", "a")) == [Binding(roles=("reader",))]
    binding["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    indexes.observe("RoleBinding", binding)
    assert ("team", "a") not in indexes.bindings


def test_unsettled_tokens_are_handed_out_once_per_quiet_period(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("tokenwarden.handlers._indexes.time.monotonic", lambda: clock[0])
    indexes = Indexes(["reader"])
    indexes.observe("ServiceToken", body("ServiceToken", "new", "u1"))
    indexes.observe("IngestionAPIKey", body("IngestionAPIKey", "waiting", "u2", status={"phase": "Pending"}))
    indexes.observe("ServiceToken", body("ServiceToken", "done", "u3", status={"phase": "Active"}))
    clock[0] += 30
    indexes.observe("IngestionAPIKey", body("IngestionAPIKey", "waiting", "u2", status={"phase": "Pending"}))
    clock[0] += 40  # "new" untouched for 70 s, "waiting" for 40 s

    assert [e.name for e in indexes.stale_unsettled(60, limit=10)] == ["new"]
    assert indexes.stale_unsettled(60, limit=10) == [], "handed out again only after another quiet period"
    clock[0] += 60
    assert sorted(e.name for e in indexes.stale_unsettled(60, limit=1)) in (["new"], ["waiting"])

    indexes.observe("ServiceToken", body("ServiceToken", "new", "u1", status={"phase": "Active"}))
    indexes.observe("IngestionAPIKey", body("IngestionAPIKey", "waiting", "u2"), deleted=True)
    assert indexes.unsettled == {}


def test_a_read_teaches_what_events_did_not():
    indexes = Indexes(["reader"])
    indexes.observe("ServiceToken", body("ServiceToken", "a", "u1"))
    indexes.observe("ServiceToken", body("ServiceToken", "b", "u2"))
    indexes.observe("ServiceToken", body("ServiceToken", "c", "u3"))
    a, b, c = (indexes.unsettled[u] for u in ("u1", "u2", "u3"))

    indexes.learn(a, body("ServiceToken", "a", "u1", status={"phase": "Active"}))
    indexes.learn(b, None)
    indexes.learn(c, body("ServiceToken", "c", "u9"))  # deleted and created again under the same name

    assert set(indexes.unsettled) == {"u9"}
    assert indexes.phases.counts() == {("ServiceToken", "Active"): 1, ("ServiceToken", "Pending"): 1}
    assert "u2" not in indexes.owners and "u3" not in indexes.owners


def test_a_claimed_hash_refuses_a_second_token_until_the_outcome_lands():
    indexes = Indexes(["reader"])
    indexes.observe("ServiceToken", body("ServiceToken", "held", "uid-0", status={"phase": "Active",
                                                                                  "tokenHash": "sha256:old"}))
    assert indexes.claim_hash("sha256:old", "uid-1", ("team", "a")) == ("team", "held")

    # Two tokens adopt one new key before either status lands: the first to claim wins.
    assert indexes.claim_hash("sha256:k", "uid-1", ("team", "a")) is None
    assert indexes.claim_hash("sha256:k", "uid-1", ("team", "a")) is None  # a retry of the same token
    assert indexes.claim_hash("sha256:k", "uid-2", ("team", "b")) == ("team", "a")

    # An event from before the status keeps the claim; the status itself hands over to the index.
    indexes.observe("ServiceToken", body("ServiceToken", "a", "uid-1"))
    assert indexes.claim_hash("sha256:k", "uid-2", ("team", "b")) == ("team", "a")
    indexes.observe("ServiceToken", body("ServiceToken", "a", "uid-1", status={"phase": "Active",
                                                                               "tokenHash": "sha256:k"}))
    assert indexes.claim_hash("sha256:k", "uid-2", ("team", "b")) == ("team", "a")
    indexes.observe("ServiceToken", body("ServiceToken", "a", "uid-1"), deleted=True)
    assert indexes.claim_hash("sha256:k", "uid-2", ("team", "b")) is None


def test_a_failed_token_releases_its_claim():
    indexes = Indexes(["reader"])
    assert indexes.claim_hash("sha256:k", "uid-1", ("team", "a")) is None
    indexes.observe("ServiceToken", body("ServiceToken", "a", "uid-1", status={"phase": "Failed"}))
    assert indexes.claim_hash("sha256:k", "uid-2", ("team", "b")) is None


def test_a_listing_forgets_what_was_deleted_while_no_watch_saw_it(monkeypatch):
    """A standby replica (paused by peering) sees no DELETED events; neither does a watch that
    lists again after a 410. What a later listing does not find is forgotten, unless an event
    showed it after that listing began."""
    clock = [1000.0]
    monkeypatch.setattr("tokenwarden.handlers._indexes.time.monotonic", lambda: clock[0])
    indexes = Indexes(["reader", "writer"])
    indexes.observe("RoleBinding", body("RoleBinding", "gone", "u1", spec={"serviceAccountName": "a",
                                                                            "roles": ["writer"]}))
    indexes.observe("RoleBinding", body("RoleBinding", "kept", "u2", spec={"serviceAccountName": "a",
                                                                            "roles": ["reader"]}))
    indexes.observe("ServiceAccount", body("ServiceAccount", "a", "u3"))
    clock[0] += 600  # paused: "gone" is deleted meanwhile
    since = clock[0]
    clock[0] += 1
    indexes.observe("RoleBinding", body("RoleBinding", "new", "u4", spec={"serviceAccountName": "a",
                                                                           "roles": ["reader"]}))
    # Our listing ran before "new" was created: it finds only "kept".
    assert indexes.prune("RoleBinding", {"u2"}, since) == 1
    assert indexes.bindings.get(("team", "a")) == [Binding(roles=("reader",), project=None)] * 2
    assert indexes.prune("ServiceAccount", {"u3"}, since) == 0 and ("team", "a") in indexes.accounts


def test_a_pruned_token_leaves_every_index():
    indexes = Indexes(["reader"])
    indexes.observe("ServiceToken", body("ServiceToken", "t", "u1", spec={"serviceAccountName": "a"},
                                         status={"phase": "Active", "tokenHash": "sha256:aa"}))
    assert indexes.prune("ServiceToken", set(), float("inf")) == 1
    assert "sha256:aa" not in indexes.hashes and "u1" not in indexes.owners
    assert ("team", "a") not in indexes.tokens and indexes.phases.counts() == {}


@pytest.mark.parametrize(("status", "waits"), [
    ({}, True),
    ({"phase": "Pending"}, True),
    ({"phase": "Active"}, False),
    ({"phase": "Failed", "conditions": [{"type": "Ready", "reason": "SecretConflict"}]}, True),
    ({"phase": "Failed", "conditions": [{"type": "Ready", "reason": "InvalidSpec"}]}, False),
    ({"phase": "Revoked", "conditions": [{"type": "Ready", "reason": "SecretConflict"}]}, False),
])
def test_tokens_waiting_on_something_outside(status, waits):
    assert waiting({"status": status}) is waits
