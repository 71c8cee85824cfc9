"""When tokens stop being valid, and when expired ones may be deleted."""
from __future__ import annotations

from datetime import datetime, timedelta


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds_until(moment: datetime, now: datetime) -> float:
    return max(0.0, (moment - now).total_seconds())


def deletion_due(expires_at: datetime, retention: timedelta) -> datetime | None:
    """When an expired token is garbage-collected; None keeps it (retention 0, for GitOps)."""
    if retention <= timedelta(0):
        return None
    return expires_at + retention
