"""The one clock the handlers read: decisions in ``policies`` take the time as an argument,
so they are tested with any instant, and tests of handlers can move this one."""
from __future__ import annotations

from datetime import datetime, timezone


def now() -> datetime:
    """The current instant, in UTC."""
    return datetime.now(timezone.utc)
