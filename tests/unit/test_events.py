"""Events are posted by kopf from its handlers' context, and through the operator's client from
anywhere else (the operator's own watches, the resync, the sweeps): handlers/_events.py."""
from __future__ import annotations

import asyncio
import contextvars

import kopf
import pytest
from kopf._core.engines import posting

from tokenwarden.handlers import _events as events
from tokenwarden.kube._events import MAX_MESSAGE, cut_message, object_reference

SECRET = kopf.Body({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": "tokenwarden-bootstrap", "namespace": "boot", "uid": "u1"}})


class RecordedEvents:
    """Stands in for CoreV1Api: the events it was asked to create."""

    def __init__(self) -> None:
        self.created: list[tuple[str, object]] = []

    def create_namespaced_event(self, namespace, body):
        self.created.append((namespace, body))


@pytest.fixture
def own_client():
    recorded = RecordedEvents()
    events.post_outside_handlers_with(recorded)
    yield recorded
    events.post_outside_handlers_with(None)


def test_outside_any_handler_the_event_is_posted_through_the_operators_client(own_client):
    contextvars.Context().run(events.warn, SECRET, reason="BootstrapRefused", message="too short")
    [(namespace, event)] = own_client.created
    assert namespace == "boot"
    assert (event.type, event.reason, event.message) == ("Warning", "BootstrapRefused", "too short")
    involved = event.involved_object
    assert (involved.api_version, involved.kind, involved.namespace, involved.name, involved.uid) == \
        ("v1", "Secret", "boot", "tokenwarden-bootstrap", "u1")
    assert event.source.component == event.reporting_component == "tokenwarden"


def test_in_a_task_that_kopf_gave_its_settings_but_no_event_queue_the_operator_posts(own_client):
    """kopf's startup tasks (the resync, the sweeps) have kopf's settings and no event queue."""
    def in_a_startup_task():
        posting.settings_var.set(kopf.OperatorSettings())
        events.info(SECRET, reason="Imported", message="imported")

    contextvars.Context().run(in_a_startup_task)
    assert [event.type for _, event in own_client.created] == ["Normal"]


async def test_in_a_kopf_handler_kopf_queues_the_event(own_client):
    queue: asyncio.Queue = asyncio.Queue()

    def in_a_handler():
        posting.settings_var.set(kopf.OperatorSettings())
        posting.event_queue_loop_var.set(asyncio.get_running_loop())
        posting.event_queue_var.set(queue)
        events.warn(SECRET, reason="BootstrapRefused", message="too short")

    contextvars.Context().run(in_a_handler)
    queued = queue.get_nowait()
    assert (queued.type, queued.reason, queued.ref["name"]) == ("Warning", "BootstrapRefused", "tokenwarden-bootstrap")
    assert own_client.created == []


def test_with_no_handler_and_no_client_yet_posting_fails_to_be_retried():
    with pytest.raises(RuntimeError, match="BootstrapRefused"):
        contextvars.Context().run(events.warn, SECRET, reason="BootstrapRefused", message="too short")


def test_a_long_message_keeps_its_start_and_end_as_kopf_cuts_it():
    message = "a" * 600 + "b" * 600
    cut = cut_message(message)
    assert len(cut) == MAX_MESSAGE and cut.startswith("a" * 500) and cut.endswith("b" * 500) and "..." in cut
    assert cut_message("short") == "short"


def test_the_reference_names_the_object_and_leaves_out_what_it_lacks():
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "boot", "uid": "u2"}}
    assert object_reference(namespace) == {"apiVersion": "v1", "kind": "Namespace", "name": "boot", "uid": "u2"}
    assert object_reference(SECRET)["namespace"] == "boot"
