"""Work that must hold, whatever fails: a keyed queue with backoff, and one lock per token.

kopf never retries an event handler, and a task has no retry of its own. So
what an event, a timer or a resync decides is handed to the queue under a key naming what
it is about (a token, the bootstrap Secret), and the queue runs it in a thread until it
returns: a failure (5xx, a conflict, a webhook that cannot be reached) runs it again after a
backoff. The work recomputes its decision from the current state each time, so a retry
never repeats an action that held, and a new submission for a key replaces one waiting.

A refusal (kube.ApiPermanentError, also behind the kopf.PermanentError it is turned into) is
not retried in a loop: the same request gets the same answer, and each run would repeat what
the work did before the refusal. A 400, 404 or 422 is not run again at all; a 403 (an RBAC
gap, an admission policy, which an administrator may lift with no change of the object) is
retried for a few minutes, FORBIDDEN_RUNS runs at most. Either is run again on the object's
next change, or at the periodic resync, each of which submits it anew.
"""
from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Hashable

import kopf

from tokenwarden.kube import ApiForbidden, ApiPermanentError

BACKOFF_FIRST = 0.5  # seconds before the first retry; doubled after each failure
BACKOFF_MAX = 60.0
FORBIDDEN_RUNS = 10  # runs of work refused with a 403: the last about 3 minutes after the first
WORKERS = 4  # threads at a time: kopf's own handlers keep the rest of the API client's pool


def backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` failures in a row (1 or more)."""
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (failures - 1))


class WorkQueue:
    """Run keyed work until it holds. ``submit`` may be called from kopf's handler threads
    as well as from the event loop."""

    def __init__(self, logger, workers: int = WORKERS, run_in: Callable = asyncio.to_thread) -> None:
        self._logger, self._workers, self._run_in = logger, workers, run_in
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._pending: dict[Hashable, tuple[Callable, tuple, contextvars.Context]] = {}
        self._due: dict[Hashable, float] = {}
        self._failures: dict[Hashable, int] = {}
        self._running: set[Hashable] = set()

    def submit(self, key: Hashable, fn: Callable, *args, delay: float = 0.0) -> None:
        """Run ``fn(*args)`` (after ``delay`` seconds), in place of what waits under ``key``, in the
        caller's context: work a kopf handler submits has its events queued by kopf, as the
        handler's are (handlers/_events.py posts those of work submitted elsewhere)."""
        context = contextvars.copy_context()
        if self._loop is None:
            raise RuntimeError("the work queue is not running")
        try:
            running_here = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            running_here = False
        if running_here:
            self._submit(key, fn, args, delay, context)
        else:
            self._loop.call_soon_threadsafe(self._submit, key, fn, args, delay, context)

    def _submit(self, key: Hashable, fn: Callable, args: tuple, delay: float, context: contextvars.Context) -> None:
        self._pending[key] = (fn, args, context)
        due = self._loop.time() + delay
        if key in self._failures and key in self._due:
            due = self._due[key]  # failing now: a stream of events does not hammer a failing server
        self._due[key] = min(due, self._due.get(key, due))
        self._wake.set()

    def __len__(self) -> int:
        return len(self._pending) + len(self._running)

    async def run(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        tasks: set[asyncio.Task] = set()
        try:
            while True:
                now = self._loop.time()
                ready = sorted((due, key) for key, due in self._due.items()
                               if due <= now and key not in self._running)
                for _, key in ready[:max(0, self._workers - len(self._running))]:
                    self._running.add(key)
                    task = asyncio.create_task(self._run_one(key))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                waiting = [due for key, due in self._due.items() if key not in self._running]
                timeout = max(0.0, min(waiting) - self._loop.time()) if waiting else None
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
        finally:
            for task in tasks:
                task.cancel()

    async def _run_one(self, key: Hashable) -> None:
        fn, args, context = self._pending.pop(key)
        del self._due[key]
        try:
            await self._run_in(context.copy().run, fn, *args)  # a copy: a context runs once at a time
        except Exception as exc:  # noqa: BLE001  (a failure is retried, or dropped: the queue outlives it)
            failures = self._failures[key] = self._failures.get(key, 0) + 1
            refused = refusal(exc)
            if refused is not None and (not isinstance(refused, ApiForbidden) or failures >= FORBIDDEN_RUNS):
                self._failures.pop(key, None)
                self._logger.warning(f"{_describe(key)}: {exc}; not retried: the API server refuses this request "
                                     f"as it is, so it runs again when the object changes, or at the next resync")
                return
            delay = backoff(failures)
            self._pending.setdefault(key, (fn, args, context))
            self._due[key] = self._loop.time() + delay
            text = str(exc) if isinstance(exc, (kopf.TemporaryError, kopf.PermanentError)) else repr(exc)
            self._logger.warning(f"{_describe(key)}: {text}; trying again in {delay:g}s")
        else:
            self._failures.pop(key, None)
        finally:
            self._running.discard(key)
            self._wake.set()


def refusal(exc: BaseException) -> ApiPermanentError | None:
    """The API server's refusal that ``exc`` is or was raised from (kopf.PermanentError is
    raised from one: handlers._errors), or None for any other failure."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ApiPermanentError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _describe(key: Hashable) -> str:
    return " ".join(str(part) for part in key) if isinstance(key, tuple) else str(key)


class TokenLocks:
    """One lock per token: this process's writers of a token's Secret and status (rotation,
    re-mint, the update reconcile, the resync) take turns, each reading what it decides on
    after the one before it wrote. Writers in other processes are kept apart by the
    resourceVersion every write carries. A lock is a few dozen bytes, kept for every token
    name seen: no lock is ever handed out twice for one token."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], threading.RLock] = {}
        self._guard = threading.Lock()

    def __call__(self, namespace: str, name: str) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault((namespace, name), threading.RLock())
