"""The work queue runs keyed work until it holds, with backoff, in fake loop time (looptime)."""
from __future__ import annotations

import asyncio
import contextvars
import logging

import pytest

import kopf

from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.handlers._work import BACKOFF_MAX, FORBIDDEN_RUNS, WorkQueue, backoff
from tokenwarden.kube import ApiForbidden, ApiNotFound, ApiPermanentError


async def _inline(fn, *args):
    """Run the work in the loop: looptime's clock only moves while the loop waits on timers."""
    return fn(*args)


@pytest.fixture
async def queue():
    work = WorkQueue(logging.getLogger("test"), run_in=_inline)
    task = asyncio.create_task(work.run())
    await asyncio.sleep(0)
    yield work
    task.cancel()


def test_backoff_doubles_up_to_a_bound():
    assert [backoff(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff(30) == BACKOFF_MAX


@pytest.mark.looptime
async def test_work_that_fails_is_retried_with_backoff_until_it_holds(queue):
    loop = asyncio.get_running_loop()
    runs, done = [], asyncio.Event()

    def flaky():
        runs.append(loop.time())
        if len(runs) < 4:
            raise RuntimeError("503 from the API server")
        done.set()

    start = loop.time()
    queue.submit(("settle", "ServiceToken", "ns", "a"), flaky)
    await asyncio.wait_for(done.wait(), timeout=60)
    assert [round(t - start, 3) for t in runs] == [0, 0.5, 1.5, 3.5]
    await asyncio.sleep(100)
    assert len(runs) == 4, "work that held is not run again"


@pytest.mark.looptime
async def test_a_new_submission_replaces_the_one_waiting(queue):
    loop = asyncio.get_running_loop()
    ran = []
    queue.submit("bootstrap", ran.append, "old", delay=10)
    queue.submit("bootstrap", ran.append, "new", delay=5)
    await asyncio.sleep(20)
    assert ran == ["new"]
    queue.submit("other", ran.append, "later", delay=30)
    queue.submit("other", ran.append, "sooner")  # the earlier time wins
    start = loop.time()
    await asyncio.sleep(1)
    assert ran == ["new", "sooner"] and loop.time() - start == 1


@pytest.mark.looptime
async def test_failing_work_keeps_its_backoff_when_submitted_again(queue):
    """A stream of events for a key that fails does not hammer the API server."""
    loop = asyncio.get_running_loop()
    runs = []

    def failing():
        runs.append(loop.time())
        raise RuntimeError("409 Conflict")

    start = loop.time()
    queue.submit("k", failing)
    await asyncio.sleep(0.1)
    for _ in range(10):
        queue.submit("k", failing)
    await asyncio.sleep(1.6)
    assert [round(t - start, 3) for t in runs] == [0, 0.5, 1.5]


@pytest.mark.looptime
async def test_keys_run_apart_and_one_key_never_twice_at_once(queue):
    loop = asyncio.get_running_loop()
    running, overlaps, finished = set(), [], []

    async def slow(key):
        if key in running:
            overlaps.append(key)
        running.add(key)
        await asyncio.sleep(2)
        running.discard(key)
        finished.append((key, loop.time()))

    queue._run_in = lambda fn, *args: fn(*args)  # a coroutine: the work takes loop time
    start = loop.time()
    for key in ("a", "b", "c"):
        queue.submit(key, slow, key)
    await asyncio.sleep(0.5)
    queue.submit("a", slow, "a")  # while "a" runs: after it
    await asyncio.sleep(10)
    assert not overlaps
    assert sorted((k, round(t - start, 3)) for k, t in finished) == [("a", 2), ("a", 4), ("b", 2), ("c", 2)]


@pytest.mark.looptime
async def test_work_runs_in_the_context_it_was_submitted_from(queue):
    """kopf gives its handlers what posting events needs in context variables: the work keeps
    them, also when it is run again after a failure."""
    var = contextvars.ContextVar("handler")
    seen = []

    def fails_once():
        seen.append(var.get("none"))
        if len(seen) == 1:
            raise RuntimeError("500 Internal Server Error")

    contextvars.copy_context().run(lambda: (var.set("kopf handler"), queue.submit("a", fails_once)))
    queue.submit("b", lambda: seen.append(var.get("none")))
    await asyncio.sleep(5)
    assert sorted(seen) == ["kopf handler", "kopf handler", "none"]


@pytest.mark.looptime
async def test_the_resync_runs_after_a_listing_and_each_interval(monkeypatch):
    """The resync timer in fake time: none before kopf's first listing (the indexes are complete
    after it), then one shortly after it, one per resyncInterval, one after each relist."""
    from datetime import timedelta
    from types import SimpleNamespace

    from tokenwarden.handlers import _indexes, _settle

    loop = asyncio.get_running_loop()
    runs = []
    monkeypatch.setattr(_settle, "resync", lambda memo, logger: runs.append(round(loop.time() - start)) or 0)
    monkeypatch.setattr(asyncio, "to_thread", _inline)
    memo = SimpleNamespace(settings=SimpleNamespace(resync_interval=timedelta(seconds=300),
                                                    bootstrap=SimpleNamespace(namespace=None)),
                           resync=_settle.Resync(), work=WorkQueue(None), indexes=_indexes.Indexes(()))
    memo.resync_wanted = memo.resync.wanted
    start = loop.time()
    task = asyncio.create_task(_settle._resync_loop(memo, logging.getLogger("test")))
    await asyncio.sleep(31)
    assert runs == []  # no listing event yet
    _indexes.listing_ended(memo, "ServiceToken", None, set(), loop.time())  # kopf's first listing, at start
    await asyncio.sleep(700)
    _indexes.listing_ended(memo, "ServiceToken", None, set(), loop.time())  # a relist after a watch expired
    await asyncio.sleep(10)
    task.cancel()
    assert runs == [31, 331, 631, 731]


def _converted(refusal: Exception) -> Exception:
    """The refusal as a handler raises it: kopf.PermanentError (handlers._errors)."""
    try:
        with kube_errors_to_kopf():
            raise refusal
    except kopf.PermanentError as exc:
        return exc
    raise AssertionError("not converted")


@pytest.mark.looptime
@pytest.mark.parametrize("refusal", [ApiPermanentError("patching status: 422 Invalid value"),
                                     ApiNotFound("reading Secret: 404 not found"),
                                     _converted(ApiPermanentError("patching status: 400 Bad Request"))])
async def test_work_the_server_refuses_as_it_is_is_not_run_again(queue, refusal):
    """A 400/404/422 gets the same answer on every retry: retrying it in a loop would repeat
    whatever the work did before the refusal (a successor minted into a Secret)."""
    runs = []

    def refused():
        runs.append(1)
        raise refusal

    queue.submit(("settle", "ServiceToken", "ns", "a"), refused)
    await asyncio.sleep(600)
    assert runs == [1]
    queue.submit(("settle", "ServiceToken", "ns", "a"), refused)  # a change of the object submits it anew
    await asyncio.sleep(1)
    assert runs == [1, 1]


@pytest.mark.looptime
@pytest.mark.parametrize("refusal", [ApiForbidden("patching status: 403 forbidden"),
                                     _converted(ApiForbidden("patching status: 403 denied by a policy"))])
async def test_work_refused_with_a_403_is_retried_for_a_few_minutes_only(queue, refusal):
    """An RBAC gap or an admission policy may be lifted with no change of the object: retried
    with the backoff, FORBIDDEN_RUNS runs at most, then left to the resync."""
    runs = []

    def refused():
        runs.append(1)
        raise refusal

    queue.submit(("settle", "ServiceToken", "ns", "a"), refused)
    await asyncio.sleep(3600)
    assert len(runs) == FORBIDDEN_RUNS


@pytest.mark.looptime
async def test_work_refused_with_a_403_then_let_through_holds(queue):
    runs = []

    def refused_twice():
        runs.append(1)
        if len(runs) <= 2:
            raise ApiForbidden("patching status: 403 forbidden")

    queue.submit(("settle", "ServiceToken", "ns", "a"), refused_twice)
    await asyncio.sleep(600)
    assert len(runs) == 3
