"""kopf's listings and pause as the operator sees them (handlers/_listings.py), and the sweep
that acts only while this replica holds the lead. kopf's stream is replaced by a list of the
items kopf's own stream yields, in its order."""
from __future__ import annotations

import asyncio
import copy
import inspect
from types import SimpleNamespace

import kopf
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


def recorder(items, namespace="team"):
    listings = Listings()
    listings.kinds[("tokenwarden.io", "servicetokens")] = "ServiceToken"
    reports = []
    listings.observed = lambda kind, body, deleted: reports.append(
        ("observed", kind, body["metadata"]["uid"], deleted, listings.current("team")))
    listings.ended = lambda kind, namespace, uids, began: reports.append(("ended", kind, namespace, uids))

    async def original(**_):
        for item in items:
            yield item

    async def stream(**kwargs):
        async for item in listings.stream(original)(settings=None, namespace=namespace, **kwargs):
            reports.append(("yielded", item if item is LISTED else item["object"]["metadata"]["uid"]))
            yield item

    return stream, reports, listings


async def drain(stream, **kwargs) -> list:
    return [item async for item in stream(**kwargs)]


async def leader(listings: Listings):
    toggles = aiotoggles.ToggleSet(any)
    toggle = await toggles.make_toggle(False, name="peering")
    listings.activity.attach(toggles)
    await asyncio.sleep(0)
    return toggle


async def test_each_object_is_observed_before_kopf_sees_it_and_each_listing_ends_with_its_uids():
    items = [event("a"), event("b"), LISTED, event("c", "ADDED"), event("a", "DELETED"),
             LISTED,  # an empty listing (kopf lists again after a 410 and finds nothing)
             event("c", "MODIFIED"), event("c"), LISTED]
    stream, reports, listings = recorder(items)
    await leader(listings)
    assert await drain(stream, resource=TOKENS) == items, "kopf's stream passes through unchanged"
    assert reports == [
        ("observed", "ServiceToken", "a", False, False), ("yielded", "a"),
        ("observed", "ServiceToken", "b", False, False), ("yielded", "b"),
        ("ended", "ServiceToken", "team", {"a", "b"}), ("yielded", LISTED),
        ("observed", "ServiceToken", "c", False, True), ("yielded", "c"),
        ("observed", "ServiceToken", "a", True, True), ("yielded", "a"),
        ("ended", "ServiceToken", "team", set()), ("yielded", LISTED),
        ("observed", "ServiceToken", "c", False, True), ("yielded", "c"),
        ("observed", "ServiceToken", "c", False, False), ("yielded", "c"),  # a listing again: not current
        ("ended", "ServiceToken", "team", {"c"}),
        ("yielded", LISTED),
    ]
    assert listings.current("team") and listings.current()


async def test_indexes_are_current_once_every_kind_is_listed_in_the_namespace_asked_about():
    listings = Listings()
    listings.kinds.update({("tokenwarden.io", "servicetokens"): "ServiceToken",
                           ("tokenwarden.io", "rolebindings"): "RoleBinding"})
    assert not listings.current(), "paused until kopf's watchers start"
    await leader(listings)
    assert not listings.current("team"), "nothing listed yet"
    listings._begin(("ServiceToken", "team"))
    listings._end(("ServiceToken", "team"))
    assert not listings.current("team"), "the bindings are not listed yet"
    listings._begin(("RoleBinding", "team"))
    listings._begin(("RoleBinding", "other"))
    listings._end(("RoleBinding", "team"))
    assert listings.current("team"), "a listing in another namespace does not hold this one"
    assert not listings.current("other") and not listings.current()
    listings._begin(("ServiceToken", None))
    assert not listings.current("team"), "a listing of every namespace covers this one"


async def test_a_pause_asks_for_every_kind_to_be_listed_again():
    items = [event("a"), LISTED]
    stream, reports, listings = recorder(items)
    toggles = aiotoggles.ToggleSet(any)
    peering = await toggles.make_toggle(False, name="peering")
    listings.activity.attach(toggles)
    await drain(stream, resource=TOKENS)
    assert listings.current("team")
    await peering.turn_to(True)
    await asyncio.sleep(0)
    await peering.turn_to(False)
    await asyncio.sleep(0)
    assert not listings.current("team"), "listed before the pause: it may lack what changed since"
    waiter = asyncio.create_task(listings.until_current("team"))
    await asyncio.sleep(0)
    assert not waiter.done()
    await drain(stream, resource=TOKENS)  # kopf lists again on resuming
    await asyncio.wait_for(waiter, 1)


async def test_a_listing_cut_short_by_a_pause_is_not_taken_for_the_next_one():
    """kopf stops its stream on a pause, wherever it is, and lists anew on resuming."""
    gate = asyncio.Event()
    listings = Listings()
    listings.kinds[("tokenwarden.io", "servicetokens")] = "ServiceToken"
    ended = []
    listings.ended = lambda kind, namespace, uids, began: ended.append(uids)
    toggles = aiotoggles.ToggleSet(any)
    peering = await toggles.make_toggle(False, name="peering")

    async def original(**_):
        yield event("old")  # the listing under way when the pause comes
        await gate.wait()
        yield event("new")  # the listing after the resume
        yield LISTED

    task = asyncio.create_task(drain(lambda **kw: listings.stream(original)(settings=None, namespace="team",
                                                                            operator_paused=toggles, **kw),
                                     resource=TOKENS))
    await asyncio.sleep(0)
    await peering.turn_to(True)
    await asyncio.sleep(0)
    await peering.turn_to(False)
    await asyncio.sleep(0)
    gate.set()
    await task
    assert ended == [{"new"}]
    assert listings.current("team")


async def test_a_stream_that_ends_mid_listing_leaves_no_listing_under_way():
    stream, _, listings = recorder([event("a")])
    await leader(listings)
    await drain(stream, resource=TOKENS)
    assert not listings._listing and not listings.current("team")


async def test_kinds_of_others_pass_through_unreported_and_the_pause_toggles_are_kept():
    stream, reports, listings = recorder([event("s"), LISTED])
    listings.observed = lambda *args: reports.append(("observed", *args))
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
    monkeypatch.setattr(_unsettled, "_read", lambda kind, entry, memo: calls.append(f"read {entry.name}") or {
        "kind": "ServiceToken", "metadata": {"uid": entry.uid, "name": entry.name, "namespace": "team"}, "status": {}})
    monkeypatch.setattr(_unsettled, "reconcile_now", lambda kind, body, memo, logger: calls.append("reconciled"))
    return _unsettled._sweep_unsettled, calls


def operator_listings(indexes: Indexes) -> Listings:
    """Listings of the operator's four kinds, feeding ``indexes`` as handlers/_indexes.py has them do."""
    from tokenwarden.handlers import _indexes

    listings = Listings()
    listings.kinds.update({(_indexes.GROUP, r.plural): r.kind for r in _indexes.RESOURCES})
    listings.after.update(_indexes.LISTED_FIRST)
    listings.observed = indexes.observe
    listings.ended = lambda kind, namespace, uids, began: _indexes.listing_ended(
        SimpleNamespace(indexes=indexes), kind, namespace, uids, began)
    return listings


async def list_every_kind(listings: Listings, objects: list[dict]) -> None:
    """kopf's listing of every kind, as its streams bring them, then nothing more."""
    for (group, plural), kind in listings.kinds.items():
        items = [{"type": None, "object": o} for o in objects if o["kind"] == kind] + [LISTED]

        async def original(items=items, **_):
            for item in items:
                yield item

        await drain(lambda **kw: listings.stream(original)(settings=None, namespace=None, **kw),
                    resource=SimpleNamespace(group=group, plural=plural))


def unsettled_token(uid: str) -> dict:
    return {"kind": "ServiceToken", "metadata": {"name": uid, "namespace": "team", "uid": uid}, "spec": {}}


async def rounds(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_the_sweep_acts_on_nothing_while_paused_nor_before_a_new_leader_has_listed_again(sweep):
    run, calls = sweep
    indexes = Indexes(["reader"])
    listings = operator_listings(indexes)
    toggles = aiotoggles.ToggleSet(any)
    standby = await toggles.make_toggle(False, name="peering")
    listings.activity.attach(toggles)
    await list_every_kind(listings, [unsettled_token("gone"), unsettled_token("kept")])  # listed, then paused
    await standby.turn_to(True)
    await rounds()
    memo = SimpleNamespace(indexes=indexes, activity=listings.activity, listings=listings, work=WorkQueue(None))
    task = asyncio.create_task(run(memo, SimpleNamespace(info=calls.append, warning=calls.append)))
    await rounds()
    assert calls == [], "a standby reads and reconciles nothing"
    await standby.turn_to(False)  # it takes the lead
    await rounds()
    assert calls == [], "a new leader acts on nothing before kopf has listed every kind again"
    await list_every_kind(listings, [unsettled_token("kept")])  # "gone" was deleted while it stood by
    for _ in range(200):
        if "reconciled" in calls:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    assert "read kept" in calls and "reconciled" in calls and "read gone" not in calls


async def test_the_sweep_reconciles_with_no_kopf_handler_run_yet(sweep):
    """The sweep is a task of the operator's own: it acts on what kopf's listings brought the
    indexes, before any handler of kopf's (its events are posted by handlers/_events.py)."""
    run, calls = sweep
    indexes = Indexes(["reader"])
    listings = operator_listings(indexes)
    await leader(listings)
    await list_every_kind(listings, [unsettled_token("t")])
    memo = SimpleNamespace(indexes=indexes, activity=listings.activity, listings=listings, work=WorkQueue(None))
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


async def test_a_token_secret_listed_before_its_token_is_not_taken_for_an_orphan(monkeypatch):
    """kopf lists Secrets and tokens side by side: a Secret whose token is not listed yet
    waits for the listing, and its token, then found in the indexes, is not read at all."""
    from tokenwarden.handlers import _orphans

    read = []
    monkeypatch.setattr(_orphans, "_delete_orphan", lambda *args: read.append(args))
    indexes = Indexes(["reader"])
    listings = operator_listings(indexes)
    await leader(listings)
    memo = SimpleNamespace(indexes=indexes, activity=listings.activity, listings=listings)
    secret = kopf.Body({"metadata": {"name": "t", "namespace": "team", "uid": "s1", "ownerReferences": [
        {"apiVersion": "tokenwarden.io/v1alpha1", "kind": "ServiceToken", "name": "t", "uid": "u1",
         "controller": True}]}})
    assert _orphans._orphaned("ADDED", secret, memo), "kopf's filter, asked before the token is listed"
    handler = asyncio.create_task(_orphans.collect_orphaned_secret(
        type="ADDED", body=secret, name="t", namespace="team", memo=memo, logger=None))
    await rounds()
    assert not handler.done(), "it waits for every kind to be listed"
    await list_every_kind(listings, [unsettled_token("u1") | {"metadata": {"name": "t", "namespace": "team",
                                                                            "uid": "u1"}}])
    await asyncio.wait_for(handler, 1)
    assert read == [], "its token is in the indexes: nothing is read or deleted"


async def test_tokens_are_listed_after_accounts_and_bindings_and_their_secrets_after_them():
    """So that a token's handlers find its roles, and a Secret's its token, without waiting."""
    indexes = Indexes(["reader"])
    listings = operator_listings(indexes)
    await leader(listings)
    yielded = []

    def stream_of(group, plural, objects):
        async def original(**_):
            for o in objects:
                yield {"type": None, "object": o}
            yield LISTED

        async def run():
            async for event in listings.stream(original)(settings=None, namespace=None,
                                                         resource=SimpleNamespace(group=group, plural=plural)):
                yielded.append(plural if event is LISTED else event["object"]["metadata"]["uid"])
        return asyncio.create_task(run())

    secret = {"kind": "Secret", "metadata": {"uid": "s1", "name": "t", "namespace": "team"}}
    account = {"kind": "ServiceAccount", "metadata": {"uid": "a1", "name": "a", "namespace": "team"}, "spec": {}}
    tasks = [stream_of("", "secrets", [secret]), stream_of("tokenwarden.io", "servicetokens", [unsettled_token("t1")]),
             stream_of("tokenwarden.io", "ingestionapikeys", [])]
    await rounds()
    assert yielded == [], "no token before the accounts and bindings are listed, no Secret before the tokens"
    tasks.append(stream_of("tokenwarden.io", "serviceaccounts", [account]))
    await rounds()
    assert yielded == ["a1", "serviceaccounts"], "the bindings are not listed yet"
    tasks.append(stream_of("tokenwarden.io", "rolebindings", []))
    await asyncio.wait_for(asyncio.gather(*tasks), 1)
    assert yielded.index("t1") > yielded.index("rolebindings")
    assert yielded.index("s1") > max(yielded.index("servicetokens"), yielded.index("ingestionapikeys"))
    assert listings.current()
