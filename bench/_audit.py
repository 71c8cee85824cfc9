"""Who LISTs and WATCHes what, read from kube-apiserver's audit log (JSON lines).

The dev control plane writes one (``ControlPlane(audit_log=...)``) with the policy in
devcluster/_cluster.py: level Metadata, no RequestReceived stage. A LIST is written once,
when it is answered (ResponseComplete); a WATCH once when its stream starts
(ResponseStarted) and once more when it ends (ResponseComplete). Requests are counted by
their auditID, so each counts once whichever stages are in the log, and a watch counts from
the moment it is opened.

Pure: lines in, rows out; bench/api_calls.py (``--startup``) reads the file and prints.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

ALL = "all"  # the selector of a request that names none
EVERY_NAMESPACE = "(all)"


@dataclass
class Request:
    """One LIST or WATCH, from the audit lines that share its auditID."""

    verb: str
    resource: str  # "group/resource"; a core kind without a group ("secrets")
    namespace: str  # EVERY_NAMESPACE when the request covers all namespaces
    selector: str  # "label <selector>", "field <selector>", both joined by "; ", or ALL
    agent: str  # the User-Agent's product ("kopf", "OpenAPI-Generator")
    received: datetime
    ended: datetime | None = None  # when a watch's stream closed (its ResponseComplete)
    continued: bool = False  # a LIST that goes on with a continue token: a further page

    @property
    def key(self) -> tuple[str, str, str]:
        return self.resource, self.namespace, self.selector


@dataclass
class Row:
    """What one process did with one (resource, namespace, selector)."""

    resource: str
    namespace: str
    selector: str
    lists: int = 0  # listings started (first pages)
    pages: int = 0  # LIST requests, continued pages included
    watches: int = 0  # watches opened
    reopened: int = 0  # of those, opened after an earlier one of the same key had ended
    agents: set[str] = field(default_factory=set)


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def selector_of(uri: str) -> str:
    """The label and field selectors of a request URI, or :data:`ALL`."""
    query = parse_qs(urlsplit(uri).query)
    parts = [f"{kind} {query[name][0]}" for kind, name in (("label", "labelSelector"), ("field", "fieldSelector"))
             if query.get(name, [""])[0]]
    return "; ".join(parts) or ALL


def parse(lines: Iterable[str], since: datetime, until: datetime,
          ignore_agents: tuple[str, ...] = ()) -> list[Request]:
    """The LISTs and WATCHes received from ``since`` to ``until`` (aware datetimes), leaving
    out those whose User-Agent starts with one of ``ignore_agents``, in the order received."""
    found: dict[str, Request] = {}
    for line in lines:
        if not line.strip():
            continue
        event = json.loads(line)
        if event.get("verb") not in ("list", "watch"):
            continue
        agent = event.get("userAgent", "")
        if agent.startswith(ignore_agents):
            continue
        received = _time(event["requestReceivedTimestamp"])
        if not since <= received <= until:
            continue
        request = found.get(event["auditID"])
        if request is None:
            ref = event.get("objectRef") or {}
            group = ref.get("apiGroup", "")
            uri = event["requestURI"]
            request = found[event["auditID"]] = Request(
                verb=event["verb"], resource=f"{group}/{ref.get('resource', '')}" if group else ref.get("resource", ""),
                namespace=ref.get("namespace") or EVERY_NAMESPACE, selector=selector_of(uri),
                agent=agent.split("/", 1)[0], received=received,
                continued=bool(parse_qs(urlsplit(uri).query).get("continue")))
        if event.get("stage") == "ResponseComplete" and request.verb == "watch":
            request.ended = _time(event["stageTimestamp"])
    return sorted(found.values(), key=lambda r: r.received)


def count(requests: Iterable[Request]) -> list[Row]:
    """One row per (resource, namespace, selector), sorted by them."""
    rows: dict[tuple[str, str, str], Row] = {}
    ended: dict[tuple[str, str, str], list[datetime]] = {}
    for request in sorted(requests, key=lambda r: r.received):
        row = rows.setdefault(request.key, Row(*request.key))
        row.agents.add(request.agent)
        if request.verb == "list":
            row.pages += 1
            row.lists += not request.continued
            continue
        row.watches += 1
        if any(end <= request.received for end in ended.get(request.key, [])):
            row.reopened += 1
        if request.ended is not None:
            ended.setdefault(request.key, []).append(request.ended)
    return [rows[key] for key in sorted(rows)]


# -- what looks doubled --------------------------------------------------
_REQUIREMENT = re.compile(r"^\s*(?:(?P<absent>!)\s*(?P<akey>[^\s=!,()]+)|(?P<key>[^\s=!,()]+)\s*"
                          r"(?:(?P<op>==|=|!=)\s*(?P<value>[^,]*?)|\s(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?)\s*$")


def _requirements(selector: str) -> dict[str, list[tuple[str, frozenset[str]]]]:
    """Per key ("label k" / "field k"), its constraints: ("in", values), ("exists", ∅) or
    ("absent", ∅). != and notin narrow nothing that this check proves disjoint: left out."""
    found: dict[str, list[tuple[str, frozenset[str]]]] = {}
    if selector == ALL:
        return found
    for part in selector.split("; "):
        kind, _, text = part.partition(" ")
        for term in re.split(r",(?![^(]*\))", text):
            match = _REQUIREMENT.match(term)
            if not match:
                continue
            if match["absent"]:
                found.setdefault(f"{kind} {match['akey']}", []).append(("absent", frozenset()))
            elif match["op"] in ("=", "=="):
                found.setdefault(f"{kind} {match['key']}", []).append(("in", frozenset([match["value"].strip()])))
            elif match["setop"] == "in":
                values = frozenset(v.strip() for v in match["values"].split(","))
                found.setdefault(f"{kind} {match['key']}", []).append(("in", values))
            elif not match["op"] and not match["setop"]:
                found.setdefault(f"{kind} {match['key']}", []).append(("exists", frozenset()))
    return found


def disjoint(a: str, b: str) -> bool:
    """True if no object can match both selectors (as far as equality, set and existence
    requirements on a shared key tell); False when they may overlap."""
    ours, theirs = _requirements(a), _requirements(b)
    for key in ours.keys() & theirs.keys():
        for (op1, values1) in ours[key]:
            for (op2, values2) in theirs[key]:
                if op1 == op2 == "in" and not values1 & values2:
                    return True
                if {op1, op2} in ({"absent", "in"}, {"absent", "exists"}):
                    return True
    return False


def doubled(rows: Iterable[Row]) -> list[str]:
    """What a process followed more than once: a (resource, namespace, selector) listed more
    than once or watched more than once at a time, and a resource followed under two
    selectors (or scopes) that may select the same objects."""
    rows = list(rows)
    found = []
    for row in rows:
        where = f"{row.resource} in {row.namespace}, {row.selector}"
        if row.lists > 1:
            found.append(f"{where}: listed {row.lists} times")
        if row.watches - row.reopened > 1:
            found.append(f"{where}: {row.watches - row.reopened} watches opened besides re-opened ones")
    for i, one in enumerate(rows):
        for other in rows[i + 1:]:
            if one.resource != other.resource:
                continue
            if EVERY_NAMESPACE not in (one.namespace, other.namespace) and one.namespace != other.namespace:
                continue
            if disjoint(one.selector, other.selector):
                continue
            found.append(f"{one.resource}: {one.selector} in {one.namespace} and {other.selector} in "
                         f"{other.namespace} may select the same objects")
    return found


def table(rows: Iterable[Row]) -> list[str]:
    """The rows as aligned text lines, a header first."""
    lines = [("resource", "namespace", "selector", "LIST", "pages", "WATCH", "re-opened", "clients")]
    for row in rows:
        lines.append((row.resource, row.namespace, row.selector, str(row.lists), str(row.pages), str(row.watches),
                      str(row.reopened), ", ".join(sorted(row.agents))))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    right = {3, 4, 5, 6}
    return ["  ".join(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                      for i, cell in enumerate(line)).rstrip() for line in lines]
