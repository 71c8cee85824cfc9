"""What kopf keeps per object between events (handlers/_footprint.py, _listings.py, _memo.py):
no body for an object whose daemons do not run, no managedFields, one memo for all objects."""
from __future__ import annotations

import copy
import inspect
from types import SimpleNamespace

from kopf._core.engines import daemons
from kopf._core.reactor import inventory, processing

from tokenwarden.handlers import _footprint
from tokenwarden.handlers._listings import Listings
from tokenwarden.handlers._memo import OperatorMemo

TOKENS = SimpleNamespace(group="tokenwarden.io", plural="servicetokens")


def test_kopf_still_keeps_the_live_body_where_the_operator_expects():
    """kopf internals the operator relies on: if a kopf upgrade moves them, this fails first."""
    assert "memory.daemons_memory.live_fresh_body = cause.body" in inspect.getsource(processing.process_spawning_cause)
    assert "await process_spawning_cause(" in inspect.getsource(processing.process_resource_causes)
    fields = {f.name for f in daemons.DaemonsMemory.__dataclass_fields__.values()}
    assert {"live_fresh_body", "running_daemons"} <= fields
    assert "copy.copy(memobase)" in inspect.getsource(inventory.ResourceMemories.recall)


async def test_the_live_body_is_let_go_unless_a_daemon_runs(monkeypatch):
    async def original(*, memory, settings, registry, cause, operator_paused):
        memory.daemons_memory.live_fresh_body = cause.body
        return []

    monkeypatch.setattr(processing, "process_spawning_cause", original)
    _footprint.install()
    _footprint.install()  # once only
    wrapped = processing.process_spawning_cause
    assert wrapped is not original and wrapped.tokenwarden_footprint
    idle, running = inventory.ResourceMemory(), inventory.ResourceMemory()
    running.daemons_memory.running_daemons["rotate"] = object()
    for memory in (idle, running):
        await wrapped(memory=memory, settings=None, registry=None, cause=SimpleNamespace(body={"a": 1}),
                      operator_paused=None)
    assert idle.daemons_memory.live_fresh_body is None
    assert running.daemons_memory.live_fresh_body == {"a": 1}, "a running daemon keeps its live view"


async def test_events_reach_kopf_without_managed_fields():
    items = [{"type": "ADDED", "object": {"metadata": {"uid": "a", "managedFields": [{"manager": "kubectl"}]},
                                          "spec": {}}},
             {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}}]

    async def original(**_):
        for item in items:
            yield item

    listings = Listings()
    seen = [e async for e in listings.stream(original)(settings=None, resource=TOKENS, namespace=None)]
    assert seen[0]["object"]["metadata"] == {"uid": "a"} and seen[0]["object"]["spec"] == {}
    assert seen[1]["object"]["metadata"] == {"resourceVersion": "7"}


def test_every_object_shares_the_one_memo():
    memo = OperatorMemo()
    memo.settings = "s"
    assert copy.copy(memo) is memo
