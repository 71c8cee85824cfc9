"""kopf's listings and pause as the operator sees them (handlers/_listings.py), and the sweep
that acts only while this replica holds the lead. kopf's stream is replaced by a list of the
items kopf's own stream yields, in its order."""
from __future__ import annotations

import asyncio
import copy
import inspect
from types import SimpleNamespace

import pytest
from kopf._cogs.aiokits import aiotoggles
from kopf._cogs.clients import watching
from kopf._core.reactor import queueing

from tokenwarden.handlers._indexes import Indexes
from tokenwarden.handlers._listings import Listings
from tokenwarden.handlers._memo import OperatorMemo
from tokenwarden.handlers._work import WorkQueue

LISTED = watching.Bookmark.LISTED
TOKENS = SimpleNamespace(group="tokenwarden.io", plural="servicetokens")
SECRETS = SimpleNamespace(group="", plural="secrets")


def event(uid: str, type: str | None = None) -> dict:
    return {"type": type, "object": {"metadata": {"uid": uid, "namespace": "team"}}}


def recorder(items):
    listings = Listings()
    listings.kinds[("tokenwarden.io", "servicetokens")] = "ServiceToken"
    reports = []
    listings.began = lambda kind, namespace: reports.append(("began", kind, namespace))
    listings.ended = lambda kind, namespace, uids, began: reports.append(("ended", kind, namespace, uids))

    async def original(**_):
        for item in items:
            yield item

    async def stream(**kwargs):
        async for item in listings.stream(original)(settings=None, namespace="team", **kwargs):
            reports.append(("yielded", item if item is LISTED else item["object"]["metadata"]["uid"]))
            yield item

    return stream, reports, listings


async def drain(stream, **kwargs) -> list:
    return [item async for item in stream(**kwargs)]


async def test_each_listing_is_reported_before_its_first_object_and_with_its_uids_at_its_end():
    items = [event("a"), event("b"), LISTED, event("c", "ADDED"), event("a", "DELETED"),
             LISTED,  # an empty listing (kopf lists again after a 410 and finds nothing)
             event("c", "MODIFIED"), event("c"), LISTED]
    stream, reports, _ = recorder(items)
    assert await drain(stream, resource=TOKENS) == items, "kopf's stream passes through unchanged"
    assert reports == [
        ("began", "ServiceToken", "team"), ("yielded", "a"), ("yielded", "b"),
        ("ended", "ServiceToken", "team", {"a", "b"}), ("yielded", LISTED),
        ("yielded", "c"), ("yielded", "a"),
        ("began", "ServiceToken", "team"), ("ended", "ServiceToken", "team", set()), ("yielded", LISTED),
        ("yielded", "c"),
        ("began", "ServiceToken", "team"), ("yielded", "c"), ("ended", "ServiceToken", "team", {"c"}),
        ("yielded", LISTED),
    ]


async def test_kinds_of_others_pass_through_unreported_and_the_pause_toggles_are_kept():
    stream, reports, listings = recorder([event("s"), LISTED])
    assert listings.activity.paused(), "not known to be active before kopf's watchers start"
    toggles = aiotoggles.ToggleSet(any)
    peering = await toggles.make_toggle(True, name="peering")
    await drain(stream, resource=SECRETS, operator_paused=toggles)
    assert [r[0] for r in reports] == ["yielded", "yielded"]
    assert listings.activity.paused()
    await asyncio.sleep(0)
    assert listings.activity.pauses == 1
    await peering.turn_to(False)
    await asyncio.sleep(0)
    assert not listings.activity.paused()
    await peering.turn_to(True)
    await asyncio.sleep(0)
    assert listings.activity.paused() and listings.activity.pauses == 2


def test_kopf_still_streams_as_the_operator_expects():
    """kopf internals the operator relies on: if a kopf upgrade moves them, this fails first."""
    source = inspect.getsource(queueing.watcher)
    assert queueing.watching is watching and "watching.infinite_watch(" in source
    assert "operator_paused=operator_paused" in source
    assert "yield Bookmark.LISTED" in inspect.getsource(watching.continuous_watch)
    assert "'type': None" in inspect.getsource(watching.continuous_watch)


def token(uid: str, namespace: str) -> dict:
    return {"kind": "ServiceToken", "metadata": {"name": uid, "namespace": namespace, "uid": uid},
            "spec": {"serviceAccountName": "a"}, "status": {"phase": "Active", "tokenHash": f"sha256:{uid}"}}


def test_a_listing_replaces_its_namespace_only_and_keeps_what_was_seen_after_it_began(monkeypatch):
    from tokenwarden.handlers import _indexes

    clock = [1000.0]
    monkeypatch.setattr("tokenwarden.handlers._indexes.time.monotonic", lambda: clock[0])
    indexes = Indexes(["reader"])
    for uid, namespace in (("gone", "one"), ("kept", "one"), ("other", "two")):
        indexes.observe("ServiceToken", token(uid, namespace))
    clock[0] += 10
    began = clock[0]
    clock[0] += 1
    indexes.observe("ServiceToken", token("new", "one"))  # created after kopf's listing was read
    _indexes.listing_ended(SimpleNamespace(indexes=indexes), "ServiceToken", "one", {"kept"}, began)
    assert "sha256:gone" not in indexes.hashes and "gone" not in indexes.owners
    assert {"sha256:kept", "sha256:new", "sha256:other"} <= set(dict(indexes.hashes.items()))


@pytest.fixture
def sweep(monkeypatch):
    """The sweep with no pause between rounds, a token read and reconciled by fakes."""
    from tokenwarden.handlers import _unsettled

    monkeypatch.setattr(_unsettled, "UNSETTLED_SWEEP", 0)
    monkeypatch.setattr(_unsettled, "UNSETTLED_AFTER", 0)
    calls = []

    async def check_listing(memo, since):
        calls.append("listed")
        memo.indexes.prune("ServiceToken", set(), float("inf"))  # the token was deleted meanwhile
        return True

    monkeypatch.setattr(_unsettled, "check_listing", check_listing)
    monkeypatch.setattr(_unsettled, "_read", lambda kind, entry, memo: calls.append(f"read {entry.name}") or
                        {"metadata": {"uid": entry.uid, "name": entry.name}, "status": {}})
    monkeypatch.setattr(_unsettled, "reconcile_now", lambda kind, body, memo, logger: calls.append("reconciled"))
    return _unsettled._sweep_unsettled, calls


async def test_the_sweep_acts_on_nothing_while_paused_and_lists_again_before_acting_as_leader(sweep):
    run, calls = sweep
    indexes = Indexes(["reader"])
    indexes.observe("ServiceToken", {"kind": "ServiceToken", "metadata": {"name": "t", "namespace": "team",
                                                                          "uid": "u1"}, "spec": {}})
    listings = Listings()
    toggles = aiotoggles.ToggleSet(any)
    standby = await toggles.make_toggle(True, name="peering")
    listings.activity.attach(toggles)
    await asyncio.sleep(0)
    memo = SimpleNamespace(indexes=indexes, activity=listings.activity, work=WorkQueue(None))
    task = asyncio.create_task(run(memo, SimpleNamespace(info=calls.append, warning=calls.append)))
    for _ in range(20):
        await asyncio.sleep(0)
    assert calls == [], "a standby reads, lists and reconciles nothing"
    await standby.turn_to(False)  # it takes the lead
    for _ in range(20):
        await asyncio.sleep(0)
    task.cancel()
    assert calls[0] == "listed", "a new leader lists every kind before it acts"
    assert "reconciled" not in calls and "read t" not in calls, "the token deleted while it stood by is gone"


async def test_the_sweep_reconciles_with_no_kopf_handler_run_yet(sweep, monkeypatch):
    """The sweep is a task of the operator's own: it acts on what the indexes loaded at start,
    before any event of kopf's (its events are posted by handlers/_events.py)."""
    from tokenwarden.handlers import _unsettled
    run, calls = sweep
    monkeypatch.setattr(_unsettled, "_read", lambda kind, entry, memo: {
        "kind": "ServiceToken", "metadata": {"uid": entry.uid, "name": entry.name, "namespace": "team"}, "status": {}})
    indexes = Indexes(["reader"])
    indexes.observe("ServiceToken", {"kind": "ServiceToken", "metadata": {"name": "t", "namespace": "team",
                                                                          "uid": "u1"}, "spec": {}})
    listings = Listings()
    toggles = aiotoggles.ToggleSet(any)
    await toggles.make_toggle(False, name="peering")  # the leader
    listings.activity.attach(toggles)
    memo = SimpleNamespace(indexes=indexes, activity=listings.activity, work=WorkQueue(None))
    task = asyncio.create_task(run(memo, SimpleNamespace(info=calls.append, warning=calls.append)))
    for _ in range(200):
        if "reconciled" in calls:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    assert "reconciled" in calls


async def test_events_reach_kopf_without_managed_fields():
    items = [{"type": "ADDED", "object": {"metadata": {"uid": "a", "managedFields": [{"manager": "kubectl"}]},
                                          "spec": {}}},
             {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}}]

    async def original(**_):
        for item in items:
            yield item

    listings = Listings()
    seen = [e async for e in listings.stream(original)(settings=None, resource=TOKENS, namespace=None)]
    assert seen[0]["object"]["metadata"] == {"uid": "a"} and seen[0]["object"]["spec"] == {}
    assert seen[1]["object"]["metadata"] == {"resourceVersion": "7"}


def test_every_object_shares_the_one_memo():
    """kopf copies the memo for every object it sees: the operator's is one for all."""
    memo = OperatorMemo()
    memo.settings = "s"
    assert copy.copy(memo) is memo
