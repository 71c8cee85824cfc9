"""Events on the operator's objects, wherever the work that posts them runs.

kopf posts an event only from the context it gives a handler while it processes an object:
the work that the operator's own watches (the bootstrap Secret, import sources, the import
key), the resync and the sweeps hand on runs outside any handler, where kopf.info and kopf.warn
raise LookupError. There the event is posted through the operator's own client (kube.events),
as kopf posts it. info and warn take kopf's arguments.
"""
from __future__ import annotations

import kopf
from kubernetes import client

from tokenwarden.kube import events


class _OwnPosting:
    """The client for events posted outside kopf's handlers: the operator's, given at start."""

    core: client.CoreV1Api | None = None


_OWN = _OwnPosting()


def post_outside_handlers_with(core: client.CoreV1Api | None) -> None:
    """At start: events that no kopf handler's context can post go through ``core``."""
    _OWN.core = core


def info(obj, *, reason: str, message: str = "") -> None:
    """A Normal event about ``obj`` (a body), as kopf.info."""
    _post(kopf.info, obj, "Normal", reason, message)


def warn(obj, *, reason: str, message: str = "") -> None:
    """A Warning event about ``obj`` (a body), as kopf.warn."""
    _post(kopf.warn, obj, "Warning", reason, message)


def _post(kopf_post, obj, type_: str, reason: str, message: str) -> None:
    """Queued by kopf in a handler (kopf's settings decide what it posts); posted through the
    operator's client elsewhere. The message never holds a token's value."""
    try:
        kopf_post(obj, reason=reason, message=message)
        return
    except KeyError:
        raise  # the body lacks what a reference needs: posted nowhere
    except LookupError:  # a context variable kopf sets for its handlers only
        pass
    if _OWN.core is None:
        raise RuntimeError(f"cannot post the {reason} event outside a kopf handler: the operator has not started")
    events.post_event(_OWN.core, events.object_reference(obj), reason, message, type_)
