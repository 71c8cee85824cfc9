"""Last use: which time a TokenUsage entry may move a credential's lastUsedAt to."""
from __future__ import annotations

from datetime import datetime, timedelta

from tokenwarden.policies._expiry import parse_time

# Clocks of the authenticator's and the operator's nodes differ a little.
CLOCK_SKEW = timedelta(minutes=5)


def _time(text: object) -> datetime | None:
    try:
        moment = parse_time(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def last_use_update(reported: object, current: str | None, created: str | None, now: datetime) -> datetime | None:
    """The time to write into lastUsedAt, or None to leave it.

    Anyone who may write the TokenUsage can only move lastUsedAt forward: never back, never
    past ``now`` (beyond clock skew), never to before the credential existed (an entry left
    by an earlier credential of the same name)."""
    moment = _time(reported)
    if moment is None or moment > now + CLOCK_SKEW:
        return None
    since = _time(created)
    if since is not None and moment < since:
        return None
    last = _time(current)
    if last is not None and moment <= last:
        return None
    return moment
