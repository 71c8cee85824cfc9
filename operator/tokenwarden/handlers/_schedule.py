"""When a token's time comes: one scheduler for the expiry, renewal and collection of every token.

Each token and key has at most one timer per action (policies.token_timers: expire at
``expiresAt``, rotate ``renewBefore`` ahead of it, delete an Expired one after the retention),
all kept in one heap (policies.Timers). The indexes feed it (handlers/_indexes.py), as they see
every event, listing and read of a token: a timer moves when the instant it is set for moves (a
rotation, an edited expiration), and goes with its token.

Due work is handed to the work queue (handlers/_work.py), which runs it in a thread and retries
it until it holds; each action decides again on a fresh read, in the token's lock. Only the
replica that leads acts (handlers/_listings.py): a standby keeps its timers, and when it takes
over it acts at once on each one that came due meanwhile, as an operator does after a restart
(its first listing replays every token).
"""
from __future__ import annotations

import asyncio
import contextlib
import math
import threading

import kopf

from tokenwarden import clock, policies
from tokenwarden.durations import parse_duration
from tokenwarden.handlers._expiry import collect_token, expire_token
from tokenwarden.handlers._listings import current, until_current
from tokenwarden.handlers._token_kinds import KINDS_BY_NAME, Kind, spec_to_settle

# Seconds before an action that did not hold is run again, unless its token's timing moved
# meanwhile: an expiry found not due on a fresh read (its token is being rotated: the event of
# the new expiresAt moves it), a renewal asked for and not yet seen in an event.
AGAIN = {policies.EXPIRE: 1.0, policies.ROTATE: 30.0}
RECHECK = 300.0  # seconds: the longest wait between looks at the clock (a wall clock that jumps)


def _renew_before(kind: Kind, spec: dict):
    """spec.rotation.renewBefore, if the token is renewed before expiry: not while an edit of
    its spec is not applied (it is not scheduled until corrected), nor for an imported key."""
    if not spec.get("rotation") or spec.get("import"):
        return None
    model, whole = spec_to_settle(kind, spec)
    if not whole or model.rotation is None:
        return None
    return parse_duration(model.rotation.renew_before)


class Scheduler:
    """The timers of every token and key. ``observe`` may be called from any thread."""

    def __init__(self, retention) -> None:
        self.retention = retention  # settings.expiredRetention
        self._timers = policies.Timers(policies.TIMED_ACTIONS)
        self._objects: dict[str, tuple[str, str, str]] = {}  # uid → (kind, namespace, name)
        self._uids: dict[tuple[str, str, str], str] = {}  # and back: the uid that holds the name now
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._deadline = math.inf  # when the loop looks next, unless woken

    def observe(self, kind: str, body: dict, deleted: bool = False) -> None:
        """A token or key as an event, a listing or a read showed it (or that it is gone)."""
        meta = body["metadata"]
        uid = meta["uid"]
        with self._lock:
            if deleted or meta.get("deletionTimestamp"):
                obj = self._objects.pop(uid, None)
                if obj is not None and self._uids.get(obj) == uid:  # not a namesake made since
                    del self._uids[obj]
                    self._timers.drop(obj)
                return
            obj = (kind, meta["namespace"], meta["name"])
            self._objects[uid] = obj
            self._uids[obj] = uid
            wanted = self._wanted(KINDS_BY_NAME[kind], body)
            armed = self._timers.replace(obj, wanted)
            soonest = min(wanted.values(), default=math.inf)
        if armed and soonest < self._deadline:
            self._wake_up()

    def _wanted(self, kind: Kind, body: dict) -> dict[str, float]:
        status = body.get("status") or {}
        phase = status.get("phase")
        if phase not in ("Active", policies.EXPIRED):
            return {}
        try:
            expires_at = policies.parse_time(status.get("expiresAt"))
        except ValueError:
            return {}  # not a time (a status written by hand): nothing is scheduled on it, as in the indexes
        renew_before = None
        if phase == "Active" and expires_at is not None:
            renew_before = _renew_before(kind, body.get("spec") or {})
        timers = policies.token_timers(phase=phase, expires_at=expires_at, renew_before=renew_before,
                                       retention=self.retention, now=clock.now())
        return {action: moment.timestamp() for action, moment in timers.items()}

    def __len__(self) -> int:
        return len(self._timers)

    def _wake_up(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return  # not running yet: its first look takes everything in
        try:
            here = asyncio.get_running_loop() is loop
        except RuntimeError:
            here = False
        if here:
            wake.set()
        else:
            loop.call_soon_threadsafe(wake.set)

    def again(self, key: tuple, instant: float, delay: float) -> None:
        """Run the action of ``key`` again after ``delay``, unless its timer moved meanwhile."""
        with self._lock:
            self._timers.again(key, instant, clock.now().timestamp() + delay)
        self._wake_up()

    async def run(self, memo, logger) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        while True:
            if not current(memo):
                await until_current(memo)  # a standby acts on nothing; on taking over, on all that is due once listed
            self._wake.clear()
            with self._lock:
                due = self._timers.pop_due(clock.now().timestamp())
                upcoming = self._timers.next_due()
                self._deadline = math.inf if upcoming is None else upcoming
            for key, instant in due:
                try:
                    self._act(key, instant, memo, logger)
                except Exception as exc:  # noqa: BLE001  (the scheduler outlives it: tried again)
                    logger.warning(f"{' '.join(key)}: {exc}; trying again in {AGAIN[policies.EXPIRE]:g}s")
                    self.again(key, instant, AGAIN[policies.EXPIRE])
            timeout = RECHECK if upcoming is None else min(RECHECK, max(0.0, upcoming - clock.now().timestamp()))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _act(self, key: tuple, instant: float, memo, logger) -> None:
        kind_name, namespace, name, action = key
        kind = KINDS_BY_NAME[kind_name]
        if action == policies.ROTATE:
            # Settled (handlers._settle) until it holds: rotated if still due on a fresh read,
            # and settled again when the overlap ends. Asked again later if no event moved it.
            memo.request_settle(kind, namespace, name)
            self.again(key, instant, AGAIN[policies.ROTATE])
            return
        memo.work.submit((action, kind_name, namespace, name), self._run_action, key, instant, kind, memo, logger)

    def _run_action(self, key: tuple, instant: float, kind: Kind, memo, logger) -> None:
        """In a thread of the work queue, which runs it again on a failure."""
        _, namespace, name, action = key
        if action == policies.EXPIRE:
            if not expire_token(kind, namespace, name, memo, logger):
                self.again(key, instant, AGAIN[policies.EXPIRE])
        else:
            collect_token(kind, namespace, name, memo, logger)


@kopf.on.startup()
async def start_scheduling(memo, logger, **_) -> None:
    memo.scheduler_task = asyncio.create_task(memo.scheduler.run(memo, logger))


@kopf.on.cleanup()
async def stop_scheduling(memo, **_) -> None:
    from tokenwarden.handlers._memo import end_task

    await end_task(memo, "scheduler_task")
