"""Kubernetes-shaped status conditions."""
from __future__ import annotations

from datetime import datetime, timezone


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[dict] | None,
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: datetime,
) -> list[dict]:
    """``conditions`` with ``type_`` set; lastTransitionTime moves only when status changes."""
    value = status if isinstance(status, str) else ("True" if status else "False")
    current = [dict(c) for c in conditions or []]
    old = next((c for c in current if c.get("type") == type_), None)
    transition = old["lastTransitionTime"] if old and old.get("status") == value and old.get(
        "lastTransitionTime") else rfc3339(now)
    new = {"type": type_, "status": value, "reason": reason, "message": message,
           "lastTransitionTime": transition}
    if generation is not None:
        new["observedGeneration"] = generation
    return [c for c in current if c.get("type") != type_] + [new]


def condition(conditions: list[dict] | None, type_: str) -> dict | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)
