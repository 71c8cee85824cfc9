"""When to rotate, and how long the rotated-out token stays valid."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

ROTATE_ANNOTATION = "tokenwarden.io/rotate"
# The longest tokenwarden.io/rotate value: status.rotationRequest (the CRD's limit) holds it as
# it is. Admission refuses a longer one; one that got past it (admission down) is refused by
# the rotation, once, and recorded by its hash.
ROTATE_REQUEST_MAX = 253


def renew_at(expires_at: datetime, renew_before: timedelta) -> datetime:
    return expires_at - renew_before


def previous_valid_until(now: datetime, overlap: timedelta, old_expires_at: datetime | None) -> datetime:
    """The overlap window, never past the old token's own expiry."""
    until = now + overlap
    return min(until, old_expires_at) if old_expires_at else until


def rotate_request_problem(annotation: str | None) -> str | None:
    """Why a tokenwarden.io/rotate value cannot be acted on (it is too long), naming the limit
    and the fix; None when it can."""
    if annotation is None or len(annotation) <= ROTATE_REQUEST_MAX:
        return None
    return (f"the {ROTATE_ANNOTATION} annotation's value is {len(annotation)} characters, longer than the "
            f"{ROTATE_REQUEST_MAX} allowed: set a shorter value (a date or a ticket number) to ask for a rotation")


def rotation_request_mark(annotation: str | None) -> str | None:
    """What status.rotationRequest records for a tokenwarden.io/rotate value answered: the value
    itself when it fits, else ``sha256:`` and its hash (71 characters), which the status always
    accepts: a value out of bounds is answered once, never by a write that fails and is retried."""
    if not annotation:
        return None
    if len(annotation) <= ROTATE_REQUEST_MAX:
        return annotation
    return "sha256:" + hashlib.sha256(annotation.encode("utf-8", "surrogatepass")).hexdigest()


def rotation_requested(annotation: str | None, handled: str | None) -> bool:
    """A manual trigger: a tokenwarden.io/rotate value not acted on yet."""
    return bool(annotation) and rotation_request_mark(annotation) != handled
