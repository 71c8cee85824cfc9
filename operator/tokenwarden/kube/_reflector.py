"""List one kind, then watch it, into a store, as client-go's Reflector does: every listing
replaces what the store holds (an object missing from it is dropped), a watch that expired
(410) is answered with a new listing, and errors with a backoff and a watch from where it
stopped. No bodies are kept: the store turns each into a small record as it arrives.

Both processes keep their own views of the cluster with it: the authenticator its index,
the operator the Secrets and ServiceAccounts it must follow beyond kopf's watches."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from tokenwarden.kube._watching import Expired


# list_page(continue_token) -> (items, resourceVersion, next continue token)
ListPage = Callable[[str | None], tuple[list[dict], str, str | None]]
# open_watch(resourceVersion) -> a context whose value yields events ({"type", "object"})
OpenWatch = Callable[[str], AbstractContextManager[Iterable[dict]]]


class Store(Protocol):
    def record(self, body: dict) -> tuple[Hashable, Any]:
        """The key of ``body`` and what is kept of it (called in the reflector's thread)."""

    def put(self, key: Hashable, record: Any) -> None: ...

    def drop(self, key: Hashable) -> None: ...

    def keys(self) -> Iterable[Hashable]: ...


class WatchError(Exception):
    """The API server ended a watch with an error other than 410."""


def backoff(failures: int) -> float:
    """Seconds to wait after the ``failures``-th error in a row: 1, 2, 4, 8, then 10."""
    return min(10.0, 2.0 ** (failures - 1))


def _call(fn: Callable[..., None], *args: Any) -> None:
    fn(*args)


def _ignore(*_: Any) -> None:
    pass


class Reflector:
    """Keeps ``store`` equal to the API server's objects of one kind. Runs in a thread of
    its own (:meth:`run`); every change to the store goes through ``deliver`` (the event
    loop's ``call_soon_threadsafe``), so the store is only ever touched by one thread and a
    request never sees it half-changed. ``listed(held, dropped)`` is called the same way once
    each listing has replaced the store: the keys the listing held, and those it dropped."""

    log = logging.getLogger("tokenwarden.reflector")

    def __init__(self, kind: str, store: Store, list_page: ListPage, open_watch: OpenWatch, *,
                 stop: threading.Event, deliver: Callable[..., None] = _call,
                 listed: Callable[[set[Hashable], list[Hashable]], None] = _ignore,
                 wait_after: Callable[[int], float] = backoff, clock: Callable[[], float] = time.monotonic) -> None:
        self.kind = kind
        self.store = store
        self.list_page = list_page
        self.open_watch = open_watch
        self.stop = stop
        self.deliver = deliver
        self.listed = listed
        self.wait_after = wait_after
        self.clock = clock
        self.synced = False            # the first full listing is in the store
        self.broken_since: float | None = None  # when listing or watching last failed, until it works again

    def run(self) -> None:
        version: str | None = None
        failures = 0
        why = "start"  # why the next listing happens: the metric's reason
        while not self.stop.is_set():
            try:
                if version is None:
                    version = self.relist(why)
                version = self.follow(version)
                failures = 0
            except Expired as exc:
                self.log.info("%s: %s; listing again", self.kind, exc)
                version, why = None, "expired"
            except Exception as exc:  # noqa: BLE001  (an outage, a dropped connection: keep trying)
                if self.stop.is_set():
                    return
                failures += 1
                if self.broken_since is None:
                    self.broken_since = self.clock()
                delay = self.wait_after(failures)
                self.log.warning("%s: %s: %s; trying again in %.0fs", self.kind,
                               "listing failed" if version is None else "watch failed", _describe(exc), delay)
                if isinstance(exc, WatchError):
                    version, why = None, "error"  # the server would not go on from there: list afresh
                self.stop.wait(delay)

    def relist(self, why: str = "start") -> str:
        """List every object, page by page, into the store; then drop what the listing did
        not hold. Returns the listing's resourceVersion."""
        seen: set[Hashable] = set()
        token: str | None = None
        while True:
            items, version, token = self.list_page(token)
            records = [self.store.record(body) for body in items]
            del items
            seen.update(key for key, _ in records)
            self.deliver(self._put_all, records)
            if not token:
                break
        self.deliver(self._replace, seen, why)
        self.broken_since = None
        return version

    def follow(self, version: str) -> str:
        """Watch from ``version`` until the server ends the watch; the last version seen."""
        with self.open_watch(version) as events:
            self.broken_since = None  # the API server took the watch
            for event in events:
                kind, body = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if body.get("code") == 410:
                        raise Expired(f"watch from {version} expired: {body.get('message')}")
                    raise WatchError(f"{body.get('code')} {body.get('message')}")
                version = (body.get("metadata") or {}).get("resourceVersion") or version
                if kind == "BOOKMARK":
                    continue
                key, record = self.store.record(body)
                if kind == "DELETED":
                    self.deliver(self.store.drop, key)
                else:
                    self.deliver(self.store.put, key, record)
                if self.stop.is_set():
                    break
        return version

    def _put_all(self, records: list[tuple[Hashable, Any]]) -> None:
        for key, record in records:
            self.store.put(key, record)

    def _replace(self, seen: set[Hashable], why: str) -> None:
        gone = [key for key in self.store.keys() if key not in seen]
        for key in gone:
            self.store.drop(key)
        if gone:
            self.log.info("%s: %d deleted while the watch was away, dropped", self.kind, len(gone))
        self.listed(seen, gone)
        self.relisted(why)
        self.synced = True

    def relisted(self, why: str) -> None:
        """A listing replaced the store's contents (``why``: start, expired, error)."""


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
