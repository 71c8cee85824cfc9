"""When to rotate, and how long the rotated-out token stays valid."""
from __future__ import annotations

from datetime import datetime, timedelta


def renew_at(expires_at: datetime, renew_before: timedelta) -> datetime:
    return expires_at - renew_before


def previous_valid_until(now: datetime, overlap: timedelta, old_expires_at: datetime | None) -> datetime:
    """The overlap window, never past the old token's own expiry."""
    until = now + overlap
    return min(until, old_expires_at) if old_expires_at else until


def rotation_requested(annotation: str | None, handled: str | None) -> bool:
    """A manual trigger: a tokenwarden.io/rotate value not acted on yet."""
    return bool(annotation) and annotation != handled
