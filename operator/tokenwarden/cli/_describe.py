"""``describe NAME``: an object as ``kubectl describe`` shows one, its spec and status, its
conditions, and its recent events (the operator posts why it did what it did there).

Nothing here can print a token: the custom resources and their events never hold one.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

import click
from kubernetes.client.rest import ApiException

from tokenwarden.cli._kubeopts import Kube, kube_options
from tokenwarden.cli._output import format_table
from tokenwarden.cli._views import View, find_object, name_argument
from tokenwarden.policies import ROTATE_ANNOTATION

#: At most this many events, the newest (an object that keeps failing collects many).
RECENT_EVENTS = 20


def label(key: str) -> str:
    """``serviceAccountName`` → ``Service Account Name``, as kubectl describe labels fields."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key)
    return words[:1].upper() + words[1:]


def fields(data: dict, indent: int = 0) -> list[str]:
    """``data`` as indented ``Label: value`` lines; lists of scalars on one line."""
    lines, pad = [], " " * indent
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"{pad}{label(key)}:")
            lines += fields(value, indent + 2)
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            lines.append(f"{pad}{label(key)}:")
            for entry in value:
                nested = fields(entry, indent + 4) if isinstance(entry, dict) else [f"{pad}    {entry}"]
                lines += [f"{pad}  - {nested[0].strip()}", *nested[1:]] if nested else []
        elif isinstance(value, list):
            lines.append(f"{pad}{label(key)}:{' ' if value else ''}{', '.join(str(v) for v in value)}")
        else:
            lines.append(f"{pad}{label(key)}:{'' if value is None else ' ' + str(value)}")
    return lines


def age(when: datetime | str | None, now: datetime) -> str:
    """How long ago, as kubectl prints ages: ``45s``, ``12m``, ``3h``, ``2d``."""
    if when is None:
        return "<unknown>"
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    seconds = max(0, int((now - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _event_time(event) -> datetime | None:
    return event.last_timestamp or event.event_time or event.first_timestamp or event.metadata.creation_timestamp


def recent_events(kube: Kube, obj: dict) -> tuple[list, str | None]:
    """The object's events, oldest first, at most RECENT_EVENTS; or none and why they cannot be read."""
    meta = obj["metadata"]
    try:
        listed = kube.core.list_namespaced_event(
            meta["namespace"], field_selector=f"involvedObject.kind={obj['kind']},involvedObject.name={meta['name']}")
    except ApiException as exc:
        return [], f"<cannot list events: {exc.reason or exc.status}>"
    # An object of the same name deleted before this one left events that are not this one's.
    events = [e for e in listed.items if not e.involved_object.uid or e.involved_object.uid == meta.get("uid")]
    events.sort(key=lambda e: _event_time(e) or datetime.min.replace(tzinfo=timezone.utc))
    return events[-RECENT_EVENTS:], None


def describe_lines(obj: dict, events: list, events_note: str | None, now: datetime) -> list[str]:
    """The text of ``describe``."""
    meta, status = obj["metadata"], dict(obj.get("status") or {})
    conditions = status.pop("conditions", None) or []
    lines = [f"Name:         {meta['name']}", f"Namespace:    {meta['namespace']}", f"Kind:         {obj['kind']}",
             f"Created:      {meta.get('creationTimestamp')}"]
    # A request's value is shown (status.rotationRequest holds it too); any other value is
    # not, since a user may have pasted a token into tokenwarden.io/leaked by hand.
    annotations = [f"{k}={v}" if k == ROTATE_ANNOTATION else k
                   for k, v in sorted((meta.get("annotations") or {}).items()) if k.startswith("tokenwarden.io/")]
    if annotations:
        lines.append("Annotations:  " + ", ".join(annotations))
    if meta.get("deletionTimestamp"):
        lines.append(f"Deleting:     since {meta['deletionTimestamp']}")
    lines += ["Spec:", *fields(obj.get("spec") or {}, 2), "Status:", *fields(status, 2)]
    lines.append("Conditions:" + ("" if conditions else "  <none>"))
    if conditions:
        rows = [[c.get("type"), c.get("status"), c.get("reason"), age(c.get("lastTransitionTime"), now),
                 c.get("message")] for c in conditions]
        lines += ["  " + line for line in format_table(["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"], rows)]
    if events_note or not events:
        lines.append(f"Events:       {events_note or '<none>'}")
    else:
        rows = [[e.type, e.reason, age(_event_time(e), now),
                 (e.source.component if e.source else None) or e.reporting_component, e.message] for e in events]
        lines += ["Events:", *["  " + line for line in format_table(["TYPE", "REASON", "AGE", "FROM", "MESSAGE"],
                                                                      rows)]]
    return lines


def describe_command(view: View) -> click.Command:
    what = "ID_OR_NAME" if view.by_id else "NAME"

    @click.command("describe", help=f"Describe the {view.noun} {what}: its spec, status, conditions and "
                                    f"recent events.\n\n\b\nExample:\n"
                                    f"  tokenwarden {view.command} describe my-{view.command}")
    @name_argument(view, what)
    @kube_options
    def command(kube: Kube, name: str) -> None:
        obj = {"kind": view.resource.kind, **find_object(kube, view, name)}
        events, note = recent_events(kube, obj)
        for line in describe_lines(obj, events, note, datetime.now(timezone.utc)):
            click.echo(line)

    return command
