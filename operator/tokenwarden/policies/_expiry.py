"""When tokens stop being valid, and when expired ones may be deleted."""
from __future__ import annotations

from datetime import datetime, timedelta

from tokenwarden import reasons


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


EXPIRED = reasons.EXPIRED  # the phase and the reason are the same word


def expiry_due(*, phase: str | None, expires_at: datetime | None, now: datetime) -> str | None:
    """Expire now? The message for the status when an Active token's ``expiresAt`` has come;
    None otherwise. Decided on the token as it is read in its lock, and written on the version
    read: a rotation that landed first moved ``expiresAt`` and the answer is None, so a
    successor is never expired early; a token no longer Active (Expired, Revoked) is left as
    it is."""
    if phase != "Active" or expires_at is None or expires_at > now:
        return None
    return f"the token expired at {expires_at.strftime('%Y-%m-%dT%H:%M:%SZ')}; its Secret was deleted"
