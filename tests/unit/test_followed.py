"""What the operator's own reflectors (handlers/_watches.py) hand on: every change once, a
listing again only what changed, what a listing lacks as DELETED, and nothing kept of the
objects it is told not to keep; and after a listing, which imported sources are looked up by name."""
from __future__ import annotations

from types import SimpleNamespace

from tokenwarden.handlers._import_sources import sources_listed
from tokenwarden.handlers._indexes import Indexes
from tokenwarden.handlers._watches import Followed
from tokenwarden.kube._watching import Expired

from .test_authn_reflector import reflect


def secret(name: str, version: str) -> dict:
    return {"metadata": {"namespace": "team", "name": name, "resourceVersion": version}}


def recorder():
    seen: list[tuple[str, tuple[str, str]]] = []
    return seen, lambda type, key, body: seen.append((type, key))


def test_a_listing_announces_each_object_once_and_a_relist_only_what_changed_or_went():
    seen, changed = recorder()
    store = Followed(changed)
    reflect(store, [[[secret("a", "1"), secret("b", "1")]], [[secret("a", "1"), secret("c", "3")]]],
            [[{"type": "MODIFIED", "object": secret("b", "2")}], Expired("410")])
    assert seen == [("ADDED", ("team", "a")), ("ADDED", ("team", "b")), ("MODIFIED", ("team", "b")),
                    ("ADDED", ("team", "c")), ("DELETED", ("team", "b"))]
    assert sorted(store.keys()) == [("team", "a"), ("team", "c")]


def test_a_watched_deletion_is_announced():
    seen, changed = recorder()
    reflect(Followed(changed), [[[secret("a", "1")]]], [[{"type": "DELETED", "object": secret("a", "2")}]])
    assert seen == [("ADDED", ("team", "a")), ("DELETED", ("team", "a"))]


def test_objects_not_kept_are_announced_and_forgotten():
    seen, changed = recorder()
    store = Followed(changed, keep=lambda key: key[1] == "listed")
    reflect(store, [[[secret("listed", "1")] + [secret(f"other-{i}", "1") for i in range(100)]]],
            [[{"type": "DELETED", "object": secret("other-3", "2")}]])
    assert store.keys() == [("team", "listed")]
    assert ("ADDED", ("team", "listed")) in seen and ("DELETED", ("team", "other-3")) in seen


def test_each_listing_tells_which_keys_it_held_and_which_it_dropped():
    seen, changed = recorder()
    listings: list[tuple[set, list]] = []
    reflect(Followed(changed), [[[secret("a", "1"), secret("b", "1")]], [[secret("a", "1")]]], [Expired("410")],
            listed=lambda held, dropped: listings.append((held, dropped)))
    assert listings == [({("team", "a"), ("team", "b")}, []), ({("team", "a")}, [("team", "b")])]


class Submitted:
    def __init__(self) -> None:
        self.keys: list = []

    def submit(self, key, fn, *args, **_) -> None:
        self.keys.append(key)


def importing(namespace: str, name: str, source: str) -> dict:
    return {"kind": "ServiceToken", "metadata": {"namespace": namespace, "name": name, "uid": f"{namespace}-{name}"},
            "spec": {"roles": ["reader"], "import": {"secretRef": {"name": source}}}}


def test_imported_sources_a_listing_lacks_are_looked_up_by_name_except_those_followed_by_name():
    memo = SimpleNamespace(indexes=Indexes(["reader"]), work=Submitted())
    for namespace, name, source in [("team", "t1", "listed"), ("team", "t2", "missing"), ("team", "t3", "dropped"),
                                    ("other", "t4", "missing"), ("boot", "t5", "bootstrap")]:
        memo.indexes.observe("ServiceToken", importing(namespace, name, source))
    sources_listed("team", {("team", "listed"), ("team", "dropped")}, set(), memo, None)
    assert memo.work.keys == [("import-source", "team", "missing")]
    memo.work.keys.clear()
    sources_listed(None, {("team", "listed")}, {("boot", "bootstrap")}, memo, None)
    assert sorted(memo.work.keys) == [("import-source", "other", "missing"), ("import-source", "team", "dropped"),
                                      ("import-source", "team", "missing")]
