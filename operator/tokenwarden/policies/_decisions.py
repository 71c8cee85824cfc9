"""What a token's current state calls for: rotate now, revoke, re-mint, end the overlap.

Each decision reads the state as it is, never an event, and takes the time as an argument:
asked again after a write that failed, it gives the same answer until the write holds, and a
decision acted on answers None from then on. Each answer is an Action (a reason for the
status and events, and a message for people), or None for nothing to do.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tokenwarden import reasons
from tokenwarden.policies._authority import TAMPERED
from tokenwarden.policies._rotation import renew_at, rotate_request_problem, rotation_requested

TERMINAL = ("Expired", "Revoked")


@dataclass(frozen=True)
class Action:
    reason: str
    message: str


# rotation_due's reasons
ROTATION_REQUESTED = reasons.ROTATION_REQUESTED
RENEW_BEFORE_EXPIRY = reasons.RENEW_BEFORE_EXPIRY
ROTATION_UNSUPPORTED = reasons.ROTATION_UNSUPPORTED
ROTATION_REQUEST_TOO_LONG = reasons.ROTATION_REQUEST_TOO_LONG
TOKEN_LEAKED = reasons.TOKEN_LEAKED


def rotation_due(*, phase: str | None, expires_at: datetime | None, renew_before: timedelta | None,
                 request: str | None, handled_request: str | None, imported: bool, now: datetime,
                 leaked: bool = False) -> Action | None:
    """Rotate now? An Active token is rotated at once, with no overlap, when a value it holds
    leaked (``leaked``, from leak_pending); on a request (tokenwarden.io/rotate) not acted on
    yet; or from ``renew_before`` ahead of its expiry. An imported key is not (its owner
    rotates it): a request for one is answered with ROTATION_UNSUPPORTED, once; a leaked one
    stays refused by the authenticator until its owner replaces it. A request too long to
    record is answered with ROTATION_REQUEST_TOO_LONG, once, and nothing is minted."""
    if phase != "Active" or (expires_at is not None and expires_at <= now):
        return None  # an expired token is the expiry's, never renewed
    if leaked and not imported:
        return Action(TOKEN_LEAKED, "the token leaked (tokenwarden.io/leaked): it is refused, and a successor "
                                    "is minted with no overlap")
    if rotation_requested(request, handled_request):
        problem = rotate_request_problem(request)
        if problem:
            return Action(ROTATION_REQUEST_TOO_LONG, problem)
        if imported:
            return Action(ROTATION_UNSUPPORTED,
                          "an imported key is rotated by its owner: replace the value in the source Secret")
        return Action(ROTATION_REQUESTED, f"rotation requested (tokenwarden.io/rotate={request!r})")
    if imported or renew_before is None or expires_at is None:
        return None
    if now >= renew_at(expires_at, renew_before):
        return Action(RENEW_BEFORE_EXPIRY, f"the token expires at {_iso(expires_at)}, within renewBefore")
    return None


def rotation_recordable(*, phase: str | None, token_hash: str | None, based_on: str | None) -> bool:
    """May a rotation's status be written again on a newer version of the token, after a
    conflict? Only while the token is the one the rotation was decided on: still Active (an
    expiry or a revocation in between is final, never turned back to Active) and holding the
    same ``tokenHash`` (no other rotation came first)."""
    return phase == "Active" and token_hash == based_on


def revocation(*, phase: str | None, minted: bool, account: str | None, account_uid: str | None,
               minted_for_uid: str | None) -> Action | None:
    """Revoke? A token once minted for a ServiceAccount is revoked when that account is gone
    (``account_uid`` None: deleted, or being deleted) or is another one of the same name
    (``minted_for_uid``, status.accountUID, differs). A token not minted yet waits for its
    account instead."""
    if phase in TERMINAL or not minted or account is None:
        return None
    if account_uid is None:
        return Action(reasons.ACCOUNT_DELETED, f"ServiceAccount {account!r} was deleted: the token is revoked")
    if minted_for_uid and minted_for_uid != account_uid:
        return Action(reasons.ACCOUNT_RECREATED, f"ServiceAccount {account!r} was deleted and created again: the "
                                          "token minted for the account before is revoked")
    return None


def remint(*, phase: str | None, imported: bool, secret_found: bool, owned: bool,
           origin: str | None) -> Action | None:
    """Re-mint? An Active minted token whose Secret is gone gets a new token in a new Secret;
    one whose Secret holds a value tokenwarden did not write (``origin`` TAMPERED, from
    secret_value_origin) gets a new token in place of it. A Secret owned by someone else is a
    conflict for the user, not a re-mint; an imported key follows its source."""
    if phase != "Active" or imported:
        return None
    if not secret_found:
        return Action(reasons.SECRET_RECREATED, "the token's Secret was deleted: its token is revoked and a new "
                                         "token is minted into a new Secret")
    if owned and origin == TAMPERED:
        return Action(reasons.SECRET_TAMPERED, "the token's Secret holds a value tokenwarden did not write: it is "
                                        "refused and a new token is minted into the Secret")
    return None


def overlap_ended(*, previous_valid_until: datetime | None, previous_in_secret: bool, now: datetime) -> bool:
    """Is a rotated-out token still kept after its overlap? Then it goes from the Secret (and
    from status). A previous token kept without a recorded end (a rotation whose status was
    never written) is the rotation's to record, not this decision's."""
    return previous_valid_until is not None and now >= previous_valid_until and previous_in_secret


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
