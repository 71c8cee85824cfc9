"""What is due for a token, and when; and the timers that hold it, one per token and action."""
from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable, Iterable
from datetime import datetime, timedelta

from tokenwarden.policies._expiry import EXPIRED, deletion_due
from tokenwarden.policies._rotation import renew_at

EXPIRE, ROTATE, COLLECT = "expire", "rotate", "collect"
TIMED_ACTIONS = (EXPIRE, ROTATE, COLLECT)


def token_timers(*, phase: str | None, expires_at: datetime | None, renew_before: timedelta | None,
                 retention: timedelta, now: datetime) -> dict[str, datetime]:
    """Action → when it is due, for a token as it is now:

    - EXPIRE at ``expires_at``, for an Active token that has one;
    - ROTATE at ``expires_at - renew_before``, for an Active token renewed before expiry
      (``renew_before`` None: it is not: no spec.rotation, an edit of it not applied, an
      imported key);
    - COLLECT ``retention`` after ``expires_at`` (after ``now`` for one expired without an
      ``expiresAt``), for an Expired token; never with a retention of 0.
    """
    if phase == "Active" and expires_at is not None:
        if renew_before is None:
            return {EXPIRE: expires_at}
        return {EXPIRE: expires_at, ROTATE: renew_at(expires_at, renew_before)}
    if phase == EXPIRED:
        due = deletion_due(expires_at or now, retention)
        return {COLLECT: due} if due is not None else {}
    return {}


class Timers:
    """One timer per (object, action), given out in the order they come due.

    A timer is set for an instant, which is also what it is known by: setting the timer of a
    key again for the same instant leaves it as it is, armed or already given out, so events
    that leave a token's timing as it was arm nothing again. Set for another instant, it is
    replaced; dropped with its object. A timer given out stays known, disarmed, until it is set
    for another instant, dropped, or armed again for a later try (:meth:`again`). Instants are
    numbers (seconds since the epoch): no clock is read here."""

    def __init__(self, actions: Iterable[Hashable]) -> None:
        self.actions = tuple(actions)
        self._timers: dict[tuple, tuple[float, float | None, int]] = {}  # key → (instant, armed at, seq)
        self._heap: list[tuple[float, int, tuple]] = []  # (armed at, seq, key); stale entries skipped
        self._seq = itertools.count()

    def replace(self, obj: tuple, wanted: dict[Hashable, float]) -> bool:
        """The timers of ``obj`` are those of ``wanted`` (action → instant) and no others; True
        when one was armed anew."""
        armed = False
        for action in self.actions:
            key = (*obj, action)
            instant = wanted.get(action)
            if instant is None:
                self._timers.pop(key, None)
                continue
            current = self._timers.get(key)
            if current is None or current[0] != instant:
                self._arm(key, instant, instant)
                armed = True
        return armed

    def drop(self, obj: tuple) -> None:
        self.replace(obj, {})

    def again(self, key: tuple, instant: float, at: float) -> bool:
        """Arm ``key`` again, at ``at``, if its timer is still the one for ``instant`` (a try that
        did not hold; a timer set for another instant since is left as it is)."""
        current = self._timers.get(key)
        if current is None or current[0] != instant:
            return False
        self._arm(key, instant, at)
        return True

    def pop_due(self, now: float) -> list[tuple[tuple, float]]:
        """The keys due by ``now``, earliest first, each with the instant it was set for;
        each is disarmed."""
        due = []
        while self._heap and self._heap[0][0] <= now:
            at, seq, key = heapq.heappop(self._heap)
            current = self._timers.get(key)
            if current is None or current[2] != seq:
                continue  # replaced, dropped or given out since
            self._timers[key] = (current[0], None, seq)
            due.append((key, current[0]))
        return due

    def next_due(self) -> float | None:
        """When the earliest armed timer comes due; None when none is armed."""
        while self._heap:
            at, seq, key = self._heap[0]
            current = self._timers.get(key)
            if current is not None and current[2] == seq:
                return at
            heapq.heappop(self._heap)
        return None

    def armed(self, key: tuple) -> float | None:
        """When ``key`` comes due; None when it is not armed."""
        current = self._timers.get(key)
        return current[1] if current else None

    def __len__(self) -> int:
        """How many timers are known, armed or not."""
        return len(self._timers)

    def _arm(self, key: tuple, instant: float, at: float) -> None:
        seq = next(self._seq)
        self._timers[key] = (instant, at, seq)
        heapq.heappush(self._heap, (at, seq, key))
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._timers):
            # Timers replaced long before they come due: keep the heap to about the live ones.
            self._heap = [(armed, s, k) for k, (_, armed, s) in self._timers.items() if armed is not None]
            heapq.heapify(self._heap)
