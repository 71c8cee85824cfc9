"""The authenticator's reflector without a cluster: a listing replaces what the index holds,
an expired watch (410) is answered with a new listing, errors with a watch from where it
stopped; and what the index then refuses."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import datetime, timezone

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from tokenwarden.authn import Account, Authenticator, TokenIndex, verify
from tokenwarden.authn._bindings import BindingStore
from tokenwarden.authn._reflector import Readiness, Reflector
from tokenwarden.authn._watch import AccountStore, TokenStore
from tokenwarden.config import Settings
from tokenwarden.kube._watching import Expired
from tokenwarden.tokens import hash_token, mint_token

NOW = datetime(2026, 11, 26, tzinfo=timezone.utc)
TOKENS = {name: mint_token("twst") for name in ("a", "b", "c", "d")}


def token(name: str, version: str = "1", *, account: str | None = None, account_uid: str | None = None,
          deleting: bool = False) -> dict:
    metadata = {"namespace": "team", "name": name, "resourceVersion": version}
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-26T00:00:00Z"
    status = {"phase": "Active", "tokenHash": hash_token(TOKENS[name])}
    if account_uid:
        status["accountUID"] = account_uid
    return {"metadata": metadata, "spec": {"serviceAccountName": account} if account else {"roles": ["reader"]},
            "status": status}


def account(name: str, uid: str, version: str = "1", *, deleting: bool = False, disabled: bool = False) -> dict:
    metadata = {"namespace": "team", "name": name, "uid": uid, "resourceVersion": version}
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-26T00:00:00Z"
    return {"metadata": metadata, "spec": {"disabled": disabled}}


class FakeApi:
    """Listings (each a list of pages) and watches (each a list of events, or an exception to
    raise on opening), served in order; after the last watch the reflector is stopped."""

    def __init__(self, listings: list[list[list[dict]]], watches: list, stop: threading.Event) -> None:
        self.listings, self.watches, self.stop = list(listings), list(watches), stop
        self.pages: list[list[dict]] = []
        self.calls: list[str] = []

    def list_page(self, token: str | None):
        if token is None:
            self.pages = list(self.listings.pop(0))
        self.calls.append(f"list {token or ''}".strip())
        page = self.pages.pop(0)
        return page, f"rv-list-{len(self.listings)}", f"p{len(self.pages)}" if self.pages else None

    @contextmanager
    def open_watch(self, version: str):
        self.calls.append(f"watch {version}")
        if not self.watches:
            self.stop.set()
            yield iter(())
            return
        script = self.watches.pop(0)
        if isinstance(script, Exception):
            raise script
        yield iter(script)


def reflect(store, listings, watches, **kwargs) -> tuple[Reflector, FakeApi]:
    stop = threading.Event()
    api = FakeApi(listings, watches, stop)
    reflector = Reflector("ServiceToken", store, api.list_page, api.open_watch, stop=stop,
                          wait_after=lambda _: 0, **kwargs)
    reflector.run()
    return reflector, api


def relists(why: str) -> float:
    return REGISTRY.get_sample_value("tokenwarden_authenticator_relists_total",
                                     {"kind": "ServiceToken", "reason": why}) or 0.0


def check(name: str, index: TokenIndex):
    return verify(TOKENS[name], index, Settings().roles, now=NOW, prefixes=("twst", "twik"))


def test_a_listing_replaces_what_the_index_held():
    index, forgotten = TokenIndex(), []
    store = TokenStore("ServiceToken", index, forgotten.append)
    for name in ("a", "b", "c"):
        store.put(*store.record(token(name)))
    reflector, api = reflect(store, [[[token("a", "5")], [token("d", "6")]]], [])
    assert api.calls == ["list", "list p1", "watch rv-list-0"]
    assert reflector.synced
    assert [check(name, index).reason for name in "abcd"] == ["ok", "unknown", "unknown", "ok"]
    assert sorted(forgotten) == [("ServiceToken", "team", "b"), ("ServiceToken", "team", "c")]
    assert sorted(store.keys()) == [("ServiceToken", "team", "a"), ("ServiceToken", "team", "d")]


def phases(kind: str) -> dict[str, float]:
    return {phase: REGISTRY.get_sample_value("tokenwarden_authenticator_tokens", {"kind": kind, "phase": phase})
            for phase in ("Pending", "Active", "Revoked")}


def test_the_phase_gauge_counts_tokens_with_and_without_a_hash_and_a_listing_drops_both():
    index, kind = TokenIndex(), "PhaseCounted"  # a kind of its own: the gauge is the process's
    store = TokenStore(kind, index, lambda _: None)
    pending = {"metadata": {"namespace": "team", "name": "p"}, "spec": {}, "status": {}}
    shared = token("a")  # two objects naming one hash: each is counted once
    twin = {**shared, "metadata": {**shared["metadata"], "name": "twin"}, "status": {**shared["status"], "phase": "Revoked"}}
    for body in (pending, shared, twin, token("b")):
        store.put(*store.record(body))
    assert phases(kind) == {"Pending": 1, "Active": 2, "Revoked": 1}
    store.put(*store.record({**pending, "status": {"phase": "Active", "tokenHash": hash_token(TOKENS["c"])}}))
    store.put(*store.record({**shared, "status": {"phase": "Revoked"}}))  # its hash gone, its phase kept
    assert phases(kind) == {"Pending": 0, "Active": 2, "Revoked": 2}
    assert sorted(name for _, _, name in store.keys()) == ["a", "b", "p", "twin"]
    reflect(store, [[[token("b")]]], [])
    assert phases(kind) == {"Pending": 0, "Active": 1, "Revoked": 0}
    assert store.keys() == [(kind, "team", "b")]


def test_an_expired_watch_lists_again_and_drops_what_was_deleted_meanwhile():
    index = TokenIndex()
    store = TokenStore("ServiceToken", index, lambda _: None)
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}}
    before = relists("expired")
    reflector, api = reflect(store, [[[token("a"), token("b")]], [[token("a")]]],
                             [[{"type": "MODIFIED", "object": token("a", "7")}, gone]])
    assert api.calls == ["list", "watch rv-list-1", "list", "watch rv-list-0"]
    assert relists("expired") == before + 1
    assert (check("a", index).reason, check("b", index).reason) == ("ok", "unknown")


def test_a_watch_refused_as_too_old_lists_again():
    index = TokenIndex()
    store = TokenStore("ServiceToken", index, lambda _: None)
    reflector, api = reflect(store, [[[token("a"), token("b")]], [[token("b")]]], [Expired("too old")])
    assert api.calls == ["list", "watch rv-list-1", "list", "watch rv-list-0"]
    assert (check("a", index).reason, check("b", index).reason) == ("unknown", "ok")


def test_errors_watch_again_from_the_last_version_seen_and_mark_the_watch_broken_until_then():
    index = TokenIndex()
    store = TokenStore("ServiceToken", index, lambda _: None)
    clock = iter([10.0, 11.0])
    broken: list[float | None] = []

    class Refused(Exception):
        pass

    events = [{"type": "ADDED", "object": token("c", "8")},
              {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}}]
    stop = threading.Event()
    api = FakeApi([[[token("a")]]], [events, Refused("connection refused"), Refused("connection refused")], stop)
    opened = api.open_watch

    @contextmanager
    def watching(version):
        broken.append(reflector.broken_since)
        with opened(version) as stream:
            yield stream

    reflector = Reflector("ServiceToken", store, api.list_page, watching, stop=stop, wait_after=lambda _: 0,
                          clock=lambda: next(clock))
    reflector.run()
    # No listing after an error: the watch resumes from the bookmark's version.
    assert api.calls == ["list", "watch rv-list-0", "watch 9", "watch 9", "watch 9"]
    assert broken == [None, None, 10.0, 10.0]  # broken from the first failure on
    assert reflector.broken_since is None      # the last watch was taken
    assert check("c", index).reason == "ok"


def test_a_watch_the_server_ends_with_another_error_lists_again():
    index = TokenIndex()
    store = TokenStore("ServiceToken", index, lambda _: None)
    error = {"type": "ERROR", "object": {"kind": "Status", "code": 500, "message": "internal error"}}
    before = relists("error")
    reflector, api = reflect(store, [[[token("a")]], [[token("b")]]], [[error]])
    assert relists("error") == before + 1
    assert api.calls == ["list", "watch rv-list-1", "list", "watch rv-list-0"]
    assert (check("a", index).reason, check("b", index).reason) == ("unknown", "ok")


def test_a_deleted_event_and_a_deletion_timestamp_refuse_the_token():
    index = TokenIndex()
    store = TokenStore("ServiceToken", index, lambda _: None)
    reflect(store, [[[token("a"), token("b")]]],
            [[{"type": "MODIFIED", "object": token("a", "2", deleting=True)},
              {"type": "DELETED", "object": token("b", "3")}]])
    assert (check("a", index).status, check("a", index).reason) == (401, "deleted")
    assert check("b", index).reason == "unknown"


def test_tokens_of_an_account_gone_going_or_recreated_are_revoked():
    index = TokenIndex()
    accounts, tokens = AccountStore(index), TokenStore("ServiceToken", index, lambda _: None)
    for body in (token("a", account="ci", account_uid="uid-1"), token("b", account="ci"),
                 token("c", account="other", account_uid="uid-9")):
        tokens.put(*tokens.record(body))
    accounts.put(*accounts.record(account("ci", "uid-1")))
    assert [check(name, index).reason for name in "abc"] == ["ok", "ok", "revoked"]  # other: no such account

    accounts.put(*accounts.record(account("ci", "uid-1", deleting=True)))
    assert [check(name, index).reason for name in "ab"] == ["revoked", "revoked"]
    accounts.drop(("team", "ci"))
    assert [check(name, index).reason for name in "ab"] == ["revoked", "revoked"]
    # Re-created under the same name: not the account token a was minted for; b (not yet
    # bound to a uid) is valid again.
    accounts.put(*accounts.record(account("ci", "uid-2")))
    assert [check(name, index).reason for name in "ab"] == ["revoked", "ok"]
    accounts.put(*accounts.record(account("ci", "uid-2", disabled=True)))
    assert check("b", index).reason == "disabled"


def binding(name: str, account: str, roles: list[str], version: str = "1", *, deleting: bool = False) -> dict:
    metadata = {"namespace": "team", "name": name, "resourceVersion": version}
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-26T00:00:00Z"
        metadata["finalizers"] = ["example.com/hold"]
    return {"metadata": metadata, "spec": {"serviceAccountName": account, "roles": roles}}


def test_roles_follow_the_bindings_watched_not_the_status_the_operator_wrote():
    """A binding deleted, being deleted, or missing from a new listing grants nothing from that
    event on; a standalone token's spec.roles cut takes effect as the edit arrives. The
    operator's status.effectiveRoles (power-user, here) is never read."""
    index = TokenIndex()
    accounts, tokens, bindings = AccountStore(index), TokenStore("ServiceToken", index, lambda _: None), \
        BindingStore(index)
    accounts.put(*accounts.record(account("ci", "uid-1")))
    for body in (token("a", account="ci"), token("b")):
        body["status"]["effectiveRoles"] = ["power-user"]
        tokens.put(*tokens.record(body))
    standalone = token("b")
    standalone["spec"]["roles"] = ["reader", "writer"]
    tokens.put(*tokens.record(standalone))
    held = binding("ci-read", "ci", ["reader"])
    reflect(bindings, [[[binding("ci-write", "ci", ["writer"]), held, binding("ci-admin", "ci", ["admin"])]]],
            [[{"type": "DELETED", "object": binding("ci-write", "ci", ["writer"], "2")},
              {"type": "MODIFIED", "object": binding("ci-read", "ci", ["reader"], "3", deleting=True)}]])
    assert (check("a", index).roles, check("b", index).roles) == (("admin",), ("reader", "writer"))
    reflect(bindings, [[[binding("ci-read", "ci", ["reader"], "4")]]], [])  # ci-admin gone while away
    assert check("a", index).roles == ("reader",)
    bindings.put(*bindings.record(binding("ci-read", "ci", ["reader"], "5", deleting=True)))
    assert check("a", index).roles == ()
    standalone["spec"]["roles"] = ["reader"]
    tokens.put(*tokens.record(standalone))
    assert check("b", index).roles == ("reader",)


def test_an_account_listing_replaces_the_accounts():
    index = TokenIndex()
    store = AccountStore(index)
    store.put(*store.record(account("gone", "uid-0")))
    reflector, _ = reflect(store, [[[account("ci", "uid-1")]]], [])
    assert index.accounts == {("team", "ci"): Account(uid="uid-1")}


def test_readiness_waits_for_every_kind_and_drops_when_a_watch_stays_broken():
    now = [100.0]
    index = TokenIndex()
    kinds = [Reflector(kind, TokenStore(kind, index, lambda _: None), None, None, stop=threading.Event())
             for kind in ("ServiceToken", "IngestionAPIKey")]
    readiness = Readiness(kinds, broken_after=60, clock=lambda: now[0])
    kinds[0].synced = True
    assert not readiness.loaded() and readiness.problems() == ["starting: the index is not loaded yet"]
    kinds[1].synced = True
    assert readiness.loaded() and readiness.problems() == []
    kinds[1].broken_since = 50.0
    assert readiness.problems() == []
    now[0] = 111.0
    assert readiness.problems() == ["the watch of IngestionAPIKey has been broken for 61s"]
    assert readiness.loaded()


@pytest.fixture
async def starting():
    """The real endpoints over an index whose one kind is not listed yet."""
    index = TokenIndex()
    reflector = Reflector("ServiceToken", TokenStore("ServiceToken", index, lambda _: None), None, None,
                          stop=threading.Event())
    authenticator = Authenticator(Settings(), index, readiness=Readiness([reflector]))
    runners = [web.AppRunner(authenticator.app()), web.AppRunner(authenticator.metrics_app())]
    ports = []
    for runner in runners:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        ports.append(runner.addresses[0][1])
    async with aiohttp.ClientSession() as session:
        yield reflector, index, session, *(f"http://127.0.0.1:{port}" for port in ports)
    for runner in runners:
        await runner.cleanup()


async def test_verification_answers_503_until_the_index_is_loaded_and_readiness_follows_the_watch(starting):
    reflector, index, session, public, internal = starting
    headers = {"Authorization": f"Bearer {TOKENS['a']}"}
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": TOKENS["a"]}}

    async def answers():
        async with session.get(f"{public}/verify", headers=headers) as verified, \
                session.post(f"{public}/apis/authentication.k8s.io/v1/tokenreviews", json=review) as reviewed, \
                session.get(f"{internal}/readyz") as ready:
            return verified.status, reviewed.status, ready.status

    assert await answers() == (503, 503, 503)
    reflector.store.put(*reflector.store.record(token("a")))
    reflector.synced = True
    assert await answers() == (200, 200, 200)
    reflector.broken_since = -1e9  # long ago: the watch has been broken since
    assert await answers() == (200, 200, 503)


def test_a_hash_two_objects_name_verifies_as_the_active_one_whichever_goes_first():
    """An import refused as a duplicate (Failed) keeps in its status the hash it held: the
    value verifies as the Active object, and either object going leaves the other's answer."""
    def named(name: str, phase: str) -> dict:
        body = token("a")
        body["metadata"]["name"], body["status"]["phase"] = name, phase
        return body

    for order in (("active", "failed"), ("failed", "active")):
        for goes in ("active", "failed"):
            index = TokenIndex()
            store = TokenStore("ServiceToken", index, lambda _: None)
            bodies = {"active": named("active", "Active"), "failed": named("failed", "Failed")}
            for name in order:
                store.put(*store.record(bodies[name]))
            found = index.lookup(TOKENS["a"])
            assert (found.name, check("a", index).reason) == ("active", "ok"), order
            store.drop(("ServiceToken", "team", goes))
            left = index.lookup(TOKENS["a"])
            assert left is not None and left.name != goes, (order, goes)
            assert check("a", index).reason == ("ok" if goes == "failed" else "failed"), (order, goes)
            assert not index.shared, "nothing is kept for a hash once one object names it"
            store.drop(("ServiceToken", "team", "failed" if goes == "active" else "active"))
            assert index.lookup(TOKENS["a"]) is None and not index.by_hash
