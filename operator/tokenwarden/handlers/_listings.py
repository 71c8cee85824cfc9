"""The operator's view of its own kinds: kopf's watch streams, read as client-go's Reflector reads its own.

kopf lists each watched kind at start, after a watch expired (410 Gone) and when it resumes
after a pause (peering); it hands the listing's objects to handlers as events with no type
and sends nothing for an object the listing lacks. Its watch stream knows more than its
handlers: in order, a listing's objects, a ``LISTED`` mark (also after an empty listing),
then watch events. This module wraps that stream (``kopf._cogs.clients.watching.infinite_watch``,
which kopf's watchers look up on every start), so that each kind is listed and watched once
per process, by kopf, and the same stream feeds the operator's indexes:

- every object of the operator's kinds is handed to ``observed`` as the stream brings it,
  before kopf's handlers see it (as an informer's store is updated before its handlers);
- once a listing ends, ``ended`` hears which uids it held, so that what it lacks is
  forgotten, as a Reflector replaces its store;
- kopf lists each kind in its own time, so a token could resume before the RoleBinding
  created meanwhile is listed: ``after`` holds a kind's listing back until the kinds it
  needs are listed (tokens after accounts and bindings, token Secrets after tokens);
- :meth:`Listings.current` says whether every kind has been listed since this replica last
  resumed and none is being listed again: quotas, the sweep, the timers and the handlers of
  what is not simply a minted token wait for it.

The same stream carries kopf's pause toggles (peering), which the sweeps read to act only
while this replica holds the lead. These are kopf internals: :func:`install` checks that they
are there and refuses to start otherwise (tests/unit/test_listings.py pins them, and
pyproject bounds kopf to the versions it tests).
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from kopf._cogs.clients import watching

Observed = Callable[[str, dict, bool], None]  # (kind, body, deleted)
ATTACH_POLL = 0.5  # seconds between looks for kopf's pause toggles, until its first watcher starts
Ended = Callable[[str, "str | None", set, float], None]  # (kind, namespace, uids listed, when it began)
Scope = tuple[str, "str | None"]  # (kind, namespace or None for all)
OBSERVED_TYPES = (None, "ADDED", "MODIFIED", "DELETED")  # a listing's objects have no type


class Activity:
    """Whether kopf has paused this replica (a standby under peering), and how many times it was."""

    def __init__(self) -> None:
        self._toggles = None  # kopf's ToggleSet of pause reasons, once a watcher has started
        self.pauses = 0
        self._follower: asyncio.Task | None = None
        self.changed: Callable[[], None] = lambda: None  # told of every pause and resume

    @property
    def known(self) -> bool:
        return self._toggles is not None

    def paused(self) -> bool:
        """True until kopf's watchers have started, and while any pause reason holds."""
        return self._toggles is None or self._toggles.is_on()

    def attach(self, toggles) -> None:
        if toggles is None or toggles is self._toggles:
            return
        self._toggles = toggles
        self._follower = asyncio.get_running_loop().create_task(self._follow(toggles))

    async def until_resumed(self) -> None:
        """Return once this replica's watchers run and no pause reason holds (at once if so)."""
        while self._toggles is None:
            await asyncio.sleep(ATTACH_POLL)  # kopf starts its watchers right after the startup handlers
        await self._toggles.wait_for(False)

    async def _follow(self, toggles) -> None:
        while True:
            await toggles.wait_for(True)
            self.pauses += 1
            self.changed()
            await toggles.wait_for(False)
            self.changed()


def leading(memo) -> bool:
    """False in a replica that kopf has paused (a standby under peering, or one whose watchers
    have not started): its watches are stopped, so its indexes are as old as its last event."""
    activity = getattr(memo, "activity", None)
    return activity is None or not activity.paused()


async def until_leading(memo) -> None:
    """Return once this replica leads (see :func:`leading`)."""
    activity = getattr(memo, "activity", None)
    if activity is not None:
        await activity.until_resumed()


def current(memo, namespace: str | None = None) -> bool:
    """True once this replica leads and its indexes hold every kind as listed since it last
    resumed, with no listing under way (in ``namespace``, or anywhere): see :class:`Listings`."""
    listings = getattr(memo, "listings", None)
    return leading(memo) if listings is None else listings.current(namespace)


async def until_current(memo, namespace: str | None = None) -> None:
    """Return once :func:`current` holds (at once if it does)."""
    listings = getattr(memo, "listings", None)
    if listings is None:
        await until_leading(memo)
    else:
        await listings.until_current(namespace)


class Listings:
    """Where kopf's streams of the operator's kinds are reported: the operator sets
    ``observed``, ``ended`` and ``after`` at startup, and reads :meth:`current`.

    ``after`` orders the listings: a kind (or another resource, by (group, plural)) named
    there begins each listing only once the kinds it names are listed since this replica
    last resumed. Tokens are listed after accounts and bindings, and token Secrets after
    tokens, so that a token's handlers find its roles, and a Secret's its token, without
    waiting: a handler that waits holds kopf's worker and the object's body, and 10,000
    waiting at once hold hundreds of megabytes."""

    def __init__(self) -> None:
        self.kinds: dict[tuple[str, str], str] = {}  # (group, plural) → kind
        self.after: dict[str | tuple[str, str], tuple[str, ...]] = {}  # kind or (group, plural) → kinds first
        self.observed: Observed | None = None
        self.ended: Ended | None = None
        self.activity = Activity()
        self.activity.changed = self._changed
        self._listing: dict[Scope, int] = {}  # listings under way → the pause count when each began
        self._listed: dict[Scope, int] = {}  # listings done → the pause count when the last began
        self._change = asyncio.Event()

    def current(self, namespace: str | None = None) -> bool:
        """Whether every kind's last listing in ``namespace`` (or in all of them, or in any
        namespace when None) began after this replica last resumed and has ended, with none
        under way: until then a handler may miss an object another kind's listing brings."""
        return bool(self.kinds) and self.listed(set(self.kinds.values()), namespace)

    def listed(self, kinds, namespace: str | None = None) -> bool:
        """:meth:`current`, for ``kinds`` only."""
        if self.activity.paused():
            return False
        pauses = self.activity.pauses

        def covers(scope: Scope) -> bool:
            return scope[0] in kinds and (namespace is None or scope[1] in (None, namespace))

        if any(covers(scope) for scope in self._listing):
            return False
        return all(any(covers(scope) and scope[0] == kind and count == pauses
                       for scope, count in self._listed.items())
                   for kind in kinds)

    async def until_current(self, namespace: str | None = None) -> None:
        await self.until_listed(set(self.kinds.values()), namespace)

    async def until_listed(self, kinds, namespace: str | None = None) -> None:
        while not (kinds and self.listed(kinds, namespace)):
            if self.activity.paused():
                await self.activity.until_resumed()
                continue
            await self._change.wait()

    def _changed(self) -> None:
        change, self._change = self._change, asyncio.Event()
        change.set()

    def _begin(self, scope: Scope) -> None:
        self._listing[scope] = self.activity.pauses
        self._changed()

    def _end(self, scope: Scope) -> None:
        self._listed[scope] = self._listing.pop(scope, self.activity.pauses)
        self._changed()

    def _abandon(self, scope: Scope) -> None:
        if self._listing.pop(scope, None) is not None:
            self._changed()

    def stream(self, original):
        async def infinite_watch(*, settings, resource, namespace, operator_paused=None, **kwargs):
            self.activity.attach(operator_paused)
            events = original(settings=settings, resource=resource, namespace=namespace,
                              operator_paused=operator_paused, **kwargs)
            events = _without_managed_fields(events)
            kind = self.kinds.get((resource.group, resource.plural))
            first = self.after.get(kind or (resource.group, resource.plural), ())
            if kind is None and not first:
                async for event in events:
                    yield event
                return
            scope: Scope = (kind or resource.plural, namespace)
            listing: int | None = None  # the pause count when the listing under way began
            listed: set = set()  # uids of the listing under way
            began = 0.0
            try:
                async for event in events:
                    typeless = isinstance(event, dict) and event.get("type") is None
                    if typeless or event is watching.Bookmark.LISTED:
                        if listing is not None and listing != self.activity.pauses:
                            listing = None  # a listing cut short by a pause: kopf lists anew on resuming
                        if listing is None:
                            if first:
                                await self.until_listed(first, namespace)  # this listing's page waits
                            listing, listed, began = self.activity.pauses, set(), time.monotonic()
                            if kind is not None:
                                self._begin(scope)
                    if kind is not None:
                        if typeless:
                            listed.add(event["object"]["metadata"]["uid"])
                        if isinstance(event, dict) and event.get("type") in OBSERVED_TYPES and self.observed:
                            self.observed(kind, event["object"], event.get("type") == "DELETED")
                        if event is watching.Bookmark.LISTED:
                            if self.ended:
                                self.ended(kind, namespace, listed, began)
                            self._end(scope)
                    if event is watching.Bookmark.LISTED:
                        listing = None
                    yield event
            finally:
                self._abandon(scope)

        infinite_watch.tokenwarden_listings = True
        return infinite_watch


async def _without_managed_fields(events):
    """kopf's events without metadata.managedFields: no handler reads them, and they are
    often the largest part of an object as kopf holds it while it works on it."""
    async for event in events:
        if isinstance(event, dict):
            metadata = (event.get("object") or {}).get("metadata")
            if metadata:
                metadata.pop("managedFields", None)
        yield event


LISTINGS = Listings()


def install(kinds: dict[tuple[str, str], str]) -> Listings:
    """Wrap kopf's watch stream once; ``kinds`` maps (group, plural) to the kinds reported."""
    original = getattr(watching, "infinite_watch", None)
    if original is None or not hasattr(watching, "Bookmark") or not hasattr(watching.Bookmark, "LISTED"):
        raise RuntimeError("this kopf version has no watching.infinite_watch with a LISTED mark: the operator "
                           "cannot tell when kopf lists again; install a kopf version this release supports")
    LISTINGS.kinds.update(kinds)
    if not getattr(original, "tokenwarden_listings", False):
        watching.infinite_watch = LISTINGS.stream(original)
    return LISTINGS
