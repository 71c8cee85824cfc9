"""What kopf does not tell handlers: when it lists a kind again, and whether this replica is paused.

kopf lists each watched kind at start, after a watch expired (410 Gone) and when it resumes
after a pause (peering); it hands the listing's objects to handlers as events with no type
and sends nothing for an object the listing lacks. Its watch stream knows more than its
handlers: in order, a listing's objects, a ``LISTED`` mark (also after an empty listing),
then watch events. This module wraps that stream (``kopf._cogs.clients.watching.infinite_watch``,
which kopf's watchers look up on every start) and reports, per kind and scope, when a
listing begins and which uids it held once it ends, so that the indexes can be replaced as
client-go's Reflector replaces its store. The same stream carries kopf's pause toggles
(peering), which the sweep reads to act only while this replica holds the lead.

These are kopf internals: :func:`install` checks that they are there and refuses to start
otherwise (tests/unit/test_listings.py pins them), rather than leave the indexes inexact.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from kopf._cogs.clients import watching

Began = Callable[[str, "str | None"], None]  # (kind, namespace or None for all)
ATTACH_POLL = 0.5  # seconds between looks for kopf's pause toggles, until its first watcher starts
Ended = Callable[[str, "str | None", set, float], None]  # (kind, namespace, uids listed, when it began)


class Activity:
    """Whether kopf has paused this replica (a standby under peering), and how many times it was."""

    def __init__(self) -> None:
        self._toggles = None  # kopf's ToggleSet of pause reasons, once a watcher has started
        self.pauses = 0
        self._follower: asyncio.Task | None = None

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
            await toggles.wait_for(False)


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


class Listings:
    """Where listing reports go: the operator sets ``began`` and ``ended`` at startup."""

    def __init__(self) -> None:
        self.kinds: dict[tuple[str, str], str] = {}  # (group, plural) → kind
        self.began: Began | None = None
        self.ended: Ended | None = None
        self.activity = Activity()

    def stream(self, original):
        async def infinite_watch(*, settings, resource, namespace, operator_paused=None, **kwargs):
            self.activity.attach(operator_paused)
            events = original(settings=settings, resource=resource, namespace=namespace,
                              operator_paused=operator_paused, **kwargs)
            events = _without_managed_fields(events)
            kind = self.kinds.get((resource.group, resource.plural))
            if kind is None:
                async for event in events:
                    yield event
                return
            listed: set | None = None  # uids of the listing under way
            began = 0.0
            async for event in events:
                typeless = isinstance(event, dict) and event.get("type") is None
                if listed is None and (typeless or event is watching.Bookmark.LISTED):
                    listed, began = set(), time.monotonic()
                    if self.began:
                        self.began(kind, namespace)  # before its first object reaches a handler
                if typeless:
                    listed.add(event["object"]["metadata"]["uid"])
                elif event is watching.Bookmark.LISTED:
                    if self.ended:
                        self.ended(kind, namespace, listed, began)
                    listed = None
                yield event

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
