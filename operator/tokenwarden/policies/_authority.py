"""Whose value sits in a minted token's Secret: the one tokenwarden wrote, or one written by hand.

The status is the authority, not the Secret: a value becomes the token only when its hash
is the one in status, or, before the status was ever written (a crash between the Secret's
creation and the status), when tokenwarden recorded that hash on the Secret as it wrote it.
Anything else was written by hand and is never accepted. Imported keys are not judged here:
their source Secret is the authority by design.
"""
from __future__ import annotations

# What a minted token's Secret holds:
CURRENT = "Current"  # the token the status names
UNRECORDED = "Unrecorded"  # written by tokenwarden, the status never was (a crash in between)
ROTATION_UNRECORDED = "RotationUnrecorded"  # a successor beside the status's token, status not updated yet
TAMPERED = "Tampered"  # a value tokenwarden did not write for this token: refuse it, mint anew


def secret_value_origin(value_hash: str | None, previous_hash: str | None, recorded_hash: str | None,
                        status_hash: str | None) -> str:
    """Judge a Secret owned by the token. ``value_hash`` and ``previous_hash`` are the hashes
    of its ``token`` and ``token.previous`` (None when absent), ``recorded_hash`` the hash
    tokenwarden recorded on it, ``status_hash`` the token's status.tokenHash."""
    if value_hash is None:
        return TAMPERED
    if status_hash:
        if value_hash == status_hash:
            return CURRENT
        if previous_hash == status_hash and recorded_hash == value_hash:
            return ROTATION_UNRECORDED
        return TAMPERED
    return UNRECORDED if recorded_hash == value_hash else TAMPERED


def rotation_predecessor(value_hash: str | None, previous_hash: str | None, status_hash: str | None) -> str | None:
    """Which of the Secret's values a rotation keeps valid for the overlap: only the one whose
    hash is the status's ("token" normally, "token.previous" after a rotation whose status was
    never written); None when neither is, and the Secret was tampered with."""
    if status_hash and value_hash == status_hash:
        return "token"
    if status_hash and previous_hash == status_hash:
        return "token.previous"
    return None
