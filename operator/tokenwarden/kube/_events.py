"""Events on an object, posted through the operator's own client: where kopf cannot post them
(no kopf handler around the work) and for the leak-report endpoint. They read as kopf's do:
same fields, same reporting component, a message cut to the length kopf keeps."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from kubernetes import client

from tokenwarden.kube._errors import translated

# The component of every event the operator posts, kopf's too (handlers/_run.py sets it in kopf's
# settings): one name in the From column of kubectl describe, the product's.
COMPONENT = "tokenwarden"
MAX_MESSAGE = 1024  # kopf's limit: a longer message keeps its start and end around "..."
_CUT = "..."


def cut_message(message: str) -> str:
    """``message`` as kopf would post it: at most MAX_MESSAGE characters, its middle cut out."""
    if len(message) <= MAX_MESSAGE:
        return message
    head = MAX_MESSAGE // 2 - len(_CUT) // 2
    tail = MAX_MESSAGE - head - len(_CUT)
    return f"{message[:head]}{_CUT}{message[-tail:]}"


def object_reference(body: Any) -> dict[str, str]:
    """The involvedObject of an event about ``body`` (a kopf body or a dict as read)."""
    meta = body["metadata"]
    reference = {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "name": meta.get("name"),
                 "namespace": meta.get("namespace"), "uid": meta.get("uid")}
    return {key: value for key, value in reference.items() if value}


def post_event(core: client.CoreV1Api, involved: dict[str, str], reason: str, message: str,
               type_: str = "Warning") -> None:
    """A core/v1 Event about ``involved`` (object_reference), in its namespace. The message says
    what happened, never a token's value: events are readable by far more than the Secrets."""
    namespace = involved.get("namespace") or "default"  # a cluster-scoped object's, as kopf does
    now = datetime.now(timezone.utc)
    event = client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name=f"{involved.get('name', 'tokenwarden')}."),
        involved_object=client.V1ObjectReference(
            api_version=involved.get("apiVersion"), kind=involved.get("kind"), name=involved.get("name"),
            namespace=namespace, uid=involved.get("uid")),
        reason=reason, message=cut_message(message), type=type_, count=1, first_timestamp=now, last_timestamp=now,
        source=client.V1EventSource(component=COMPONENT), reporting_component=COMPONENT)
    with translated(f"posting an event on {involved.get('kind')} {namespace}/{involved.get('name')}"):
        core.create_namespaced_event(namespace, event)
