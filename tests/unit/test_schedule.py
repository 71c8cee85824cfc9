"""The scheduler of token timers (policies/_schedule.py, handlers/_schedule.py): what is due
and when, one timer per token and action, replaced, dropped and given out in order; and only
the replica that leads acts."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from kopf._cogs.aiokits import aiotoggles

from tokenwarden import policies
from tokenwarden.handlers import _schedule
from tokenwarden.handlers._listings import Listings
from tokenwarden.policies import COLLECT, EXPIRE, ROTATE, Timers, token_timers

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(("phase", "expires_at", "renew_before", "retention", "expected"), [
    ("Active", NOW + HOUR, None, HOUR, {EXPIRE: NOW + HOUR}),
    ("Active", NOW + HOUR, timedelta(minutes=10), HOUR,
     {EXPIRE: NOW + HOUR, ROTATE: NOW + timedelta(minutes=50)}),
    ("Active", None, timedelta(minutes=10), HOUR, {}),  # never expires: nothing to renew before
    ("Expired", NOW - HOUR, None, 2 * HOUR, {COLLECT: NOW + HOUR}),
    ("Expired", None, None, HOUR, {COLLECT: NOW + HOUR}),  # expired with no expiresAt: from now
    ("Expired", NOW - HOUR, None, timedelta(0), {}),  # a retention of 0 keeps it
    ("Pending", NOW + HOUR, None, HOUR, {}),
    ("Revoked", NOW + HOUR, None, HOUR, {}),
    (None, None, None, HOUR, {}),
])
def test_what_is_due_for_a_token(phase, expires_at, renew_before, retention, expected):
    assert token_timers(phase=phase, expires_at=expires_at, renew_before=renew_before, retention=retention,
                        now=NOW) == expected


A, B, C = ("ServiceToken", "team", "a"), ("ServiceToken", "team", "b"), ("IngestionAPIKey", "team", "c")


def timers() -> Timers:
    return Timers((EXPIRE, ROTATE, COLLECT))


def test_timers_come_due_earliest_first_and_each_once():
    t = timers()
    t.replace(A, {EXPIRE: 30.0, ROTATE: 10.0})
    t.replace(B, {EXPIRE: 20.0})
    t.replace(C, {COLLECT: 40.0})
    assert t.next_due() == 10.0
    assert t.pop_due(5.0) == []
    assert t.pop_due(30.0) == [((*A, ROTATE), 10.0), ((*B, EXPIRE), 20.0), ((*A, EXPIRE), 30.0)]
    assert t.pop_due(35.0) == [], "each is given out once"
    assert t.next_due() == 40.0


def test_a_timer_set_again_for_its_instant_stays_as_it_is_and_one_set_for_another_is_replaced():
    t = timers()
    assert t.replace(A, {EXPIRE: 10.0})
    assert not t.replace(A, {EXPIRE: 10.0}), "an event that left the timing as it was arms nothing"
    assert t.pop_due(10.0) == [((*A, EXPIRE), 10.0)]
    assert not t.replace(A, {EXPIRE: 10.0}), "given out: the same event does not arm it again"
    assert t.pop_due(100.0) == []
    assert t.replace(A, {EXPIRE: 50.0}), "moved (a rotation, an edited expiration): armed anew"
    assert t.pop_due(20.0) == []
    assert t.armed((*A, EXPIRE)) == 50.0
    t.replace(A, {EXPIRE: 5.0})  # moved earlier: the later one is gone
    assert t.pop_due(100.0) == [((*A, EXPIRE), 5.0)]


def test_timers_a_token_no_longer_wants_and_those_of_a_token_gone_are_dropped():
    t = timers()
    t.replace(A, {EXPIRE: 10.0, ROTATE: 5.0})
    t.replace(B, {EXPIRE: 10.0})
    t.replace(A, {COLLECT: 20.0})  # expired: no expiry, no rotation, a collection
    t.drop(B)
    assert t.pop_due(100.0) == [((*A, COLLECT), 20.0)]
    assert len(t) == 1 and t.next_due() is None


def test_an_action_that_did_not_hold_is_armed_again_unless_its_timer_moved():
    t = timers()
    t.replace(A, {EXPIRE: 10.0})
    t.replace(B, {EXPIRE: 10.0})
    t.pop_due(10.0)
    assert t.again((*A, EXPIRE), 10.0, 11.0)
    t.replace(B, {EXPIRE: 60.0})  # the rotation's event came first
    assert not t.again((*B, EXPIRE), 10.0, 11.0), "the moved timer stands"
    assert not t.again((*C, COLLECT), 10.0, 11.0), "nothing for a token gone"
    assert t.pop_due(30.0) == [((*A, EXPIRE), 10.0)]
    assert t.pop_due(100.0) == [((*B, EXPIRE), 60.0)]


def test_timers_moved_many_times_keep_their_order_and_the_heap_small():
    t = timers()
    for i in range(1000):
        t.replace(A, {EXPIRE: 1000.0 + i})
        t.replace(B, {EXPIRE: 2000.0 - i})
    assert len(t._heap) <= 2 * len(t) + 64
    assert t.pop_due(5000.0) == [((*B, EXPIRE), 1001.0), ((*A, EXPIRE), 1999.0)]


def token(name: str, phase: str, expires_at: datetime | None, uid: str | None = None, **spec) -> dict:
    return {"kind": "ServiceToken", "metadata": {"name": name, "namespace": "team", "uid": uid or f"u-{name}",
                                                 "generation": 1},
            "spec": spec, "status": {"phase": phase, "expiresAt": expires_at and policies_time(expires_at)}}


def policies_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Work:
    """Stands in for the work queue: records what is submitted, runs nothing."""

    def __init__(self) -> None:
        self.submitted: list[tuple] = []

    def submit(self, key, fn, *args, **_) -> None:
        self.submitted.append(key)


@pytest.fixture
def clock(monkeypatch):
    now = [NOW]
    monkeypatch.setattr(_schedule.clock, "now", lambda: now[0])
    return now


async def settle(predicate=lambda: False, rounds: int = 200) -> None:
    """Let the scheduler run until ``predicate`` holds, or for ``rounds`` turns."""
    for _ in range(rounds):
        if predicate():
            return
        await asyncio.sleep(0.005)


async def test_a_standby_acts_on_nothing_and_on_taking_over_acts_on_what_came_due(clock):
    listings = Listings()
    toggles = aiotoggles.ToggleSet(any)
    standby = await toggles.make_toggle(True, name="peering")
    listings.activity.attach(toggles)
    settled = []
    memo = SimpleNamespace(activity=listings.activity, work=Work(),
                           request_settle=lambda kind, namespace, name: settled.append(name))
    scheduler = _schedule.Scheduler(HOUR)
    scheduler.observe("ServiceToken", token("due", "Active", NOW - timedelta(seconds=5)))
    scheduler.observe("ServiceToken", token("later", "Active", NOW + HOUR))
    scheduler.observe("ServiceToken", token("renew", "Active", NOW + HOUR, roles=["reader"], ttl="3h",
                                            rotation={"renewBefore": "2h"}))
    # An edit of its rotation that is not applied (a fixed expiration): no renewal is scheduled.
    scheduler.observe("ServiceToken", token("edited", "Active", NOW + HOUR, roles=["reader"],
                                            expiration="2030-02-01", rotation={"renewBefore": "2h"}))
    scheduler.observe("ServiceToken", token("gone", "Active", NOW - HOUR))
    scheduler.observe("ServiceToken", {"metadata": {"uid": "u-gone"}}, deleted=True)
    scheduler.observe("ServiceToken", token("moved", "Active", NOW - HOUR))
    scheduler.observe("ServiceToken", token("moved", "Active", NOW + 2 * HOUR))  # rotated: expires later
    task = asyncio.create_task(scheduler.run(memo, SimpleNamespace(warning=print)))
    try:
        await settle(rounds=20)
        assert memo.work.submitted == [] and settled == [], "a standby acts on nothing"
        await standby.turn_to(False)  # it takes the lead
        await settle(lambda: memo.work.submitted and settled)
        assert memo.work.submitted == [(EXPIRE, "ServiceToken", "team", "due")], "a token gone or moved is not"
        assert settled == ["renew"], "a renewal due is asked of the settle"
        scheduler.observe("ServiceToken", token("due", "Active", NOW - timedelta(seconds=5)))
        scheduler.observe("ServiceToken", token("new", "Active", NOW - timedelta(seconds=1)))  # made since
        await settle(lambda: len(memo.work.submitted) > 1)
        assert memo.work.submitted[1:] == [(EXPIRE, "ServiceToken", "team", "new")], "each timer acts once"
        await standby.turn_to(True)  # it stands by again
        scheduler.observe("ServiceToken", token("later", "Active", NOW - timedelta(seconds=1)))
        await settle(rounds=20)
        assert len(memo.work.submitted) == 2, "a standby again: nothing more"
    finally:
        task.cancel()


async def test_an_expiry_not_due_on_a_fresh_read_is_tried_again_unless_its_token_moved(clock, monkeypatch):
    answers = {"a": [False, True], "b": [False]}
    runs = []

    def expire_token(kind, namespace, name, memo, logger):
        runs.append(name)
        return answers[name].pop(0)

    monkeypatch.setattr(_schedule, "expire_token", expire_token)
    memo = SimpleNamespace(activity=None, work=SimpleNamespace(
        submit=lambda key, fn, *args, **_: asyncio.get_running_loop().call_soon(fn, *args)))
    scheduler = _schedule.Scheduler(HOUR)
    scheduler.observe("ServiceToken", token("a", "Active", NOW))
    scheduler.observe("ServiceToken", token("b", "Active", NOW))
    task = asyncio.create_task(scheduler.run(memo, SimpleNamespace(warning=print)))
    try:
        await settle(lambda: len(runs) == 2)
        assert sorted(runs) == ["a", "b"]
        again = NOW.timestamp() + _schedule.AGAIN[EXPIRE]
        assert scheduler._timers.armed(("ServiceToken", "team", "a", EXPIRE)) == again
        scheduler.observe("ServiceToken", token("b", "Active", NOW + HOUR))  # its rotation's event
        clock[0] = NOW + timedelta(seconds=2)
        scheduler._wake_up()
        await settle(lambda: len(runs) == 3)
        await settle(rounds=20)
        assert sorted(runs) == ["a", "a", "b"], "tried again until it held; a moved timer waits for its instant"
        assert scheduler._timers.armed(("ServiceToken", "team", "b", EXPIRE)) == (NOW + HOUR).timestamp()
    finally:
        task.cancel()


def test_a_token_gone_takes_its_timers_and_leaves_a_namesakes(clock):
    scheduler = _schedule.Scheduler(HOUR)
    scheduler.observe("ServiceToken", token("t", "Active", NOW + HOUR, uid="old"))
    scheduler.observe("ServiceToken", token("t", "Active", NOW + 2 * HOUR, uid="new"))  # recreated
    scheduler.observe("ServiceToken", {"metadata": {"uid": "old"}}, deleted=True)  # learnt late, from a listing
    assert scheduler._timers.armed(("ServiceToken", "team", "t", EXPIRE)) == (NOW + 2 * HOUR).timestamp()
    scheduler.observe("ServiceToken", token("t", "Active", NOW + 2 * HOUR, uid="new"), deleted=True)
    assert len(scheduler) == 0


def test_a_status_that_names_no_time_schedules_nothing_and_stops_nothing(clock):
    """The indexes tell the scheduler of every event: a body it cannot read must not fail them."""
    scheduler = _schedule.Scheduler(HOUR)
    body = token("t", "Active", None)
    body["status"]["expiresAt"] = "not a time"
    scheduler.observe("ServiceToken", body)
    assert len(scheduler) == 0
