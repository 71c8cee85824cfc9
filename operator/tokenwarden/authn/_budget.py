"""The TokenReview budget, shared fairly by namespaces.

At most ``rate`` reviews a second go to kube-apiserver, ``burst`` saved up. While reviews are
scarce, requests wait for one, in a queue per namespace, and the namespaces with requests
waiting take turns: each review goes to the next namespace in the round. A namespace whose
workloads mint and present fresh tokens in a flood (only real, signed tokens get this far)
gets its share, and every other namespace keeps its own. A request waits at most ``wait``
seconds, and at most ``queue`` wait per namespace: past either, it is refused (429).
"""
from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; clock injected."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = float(burst)
        self.at = clock()

    def _fill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = now

    def take(self) -> bool:
        self._fill()
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def due_in(self) -> float:
        """Seconds until the next token."""
        self._fill()
        return max(0.0, (1 - self.tokens) / self.rate)


class FairBudget:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float], *, wait: float = 0.0,
                 queue: int = 100) -> None:
        self.bucket = TokenBucket(rate, burst, clock)
        self.wait = wait
        self.queue = queue
        self.waiting: OrderedDict[str, deque[asyncio.Future]] = OrderedDict()  # in the round's order
        self.turns: asyncio.Task | None = None

    async def acquire(self, namespace: str) -> bool:
        """Whether a review may be sent for a token of ``namespace``, now or after a wait."""
        if not self.waiting and self.bucket.take():
            return True
        queued = self.waiting.get(namespace)
        if self.wait <= 0 or (queued is not None and len(queued) >= self.queue):
            return False
        granted = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(namespace, deque()).append(granted)
        if self.turns is None or self.turns.done():
            self.turns = asyncio.create_task(self._take_turns())
        try:
            await asyncio.wait({granted}, timeout=self.wait)
        finally:
            if not granted.done():  # timed out, or the request went away
                granted.cancel()
                self._withdraw(namespace, granted)
        return not granted.cancelled() and granted.result()

    def _withdraw(self, namespace: str, granted: asyncio.Future) -> None:
        queued = self.waiting.get(namespace)
        if queued is None:
            return
        try:
            queued.remove(granted)
        except ValueError:
            pass
        if not queued:
            del self.waiting[namespace]

    async def _take_turns(self) -> None:
        """Hand out reviews as the bucket fills, one per namespace in turn."""
        while self.waiting:
            if not self.bucket.take():
                # At least a millisecond: a float a hair under a whole token would sleep for nothing.
                await asyncio.sleep(max(self.bucket.due_in(), 0.001))
                continue
            granted = False
            while self.waiting and not granted:
                namespace, queued = self.waiting.popitem(last=False)
                while queued and not granted:
                    waiter = queued.popleft()
                    if not waiter.done():
                        waiter.set_result(True)
                        granted = True
                if queued:
                    self.waiting[namespace] = queued  # to the end of the round
            if not granted:
                self.bucket.tokens += 1  # no one left to take it
