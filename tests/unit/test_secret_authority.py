"""Which value in a minted token's Secret is the token: the status decides, never the Secret."""
from __future__ import annotations

import pytest

from tokenwarden.policies import (
    CURRENT,
    ROTATION_UNRECORDED,
    TAMPERED,
    UNRECORDED,
    rotation_predecessor,
    secret_value_origin,
)

OURS, NEXT, HAND = "sha256:ours", "sha256:next", "sha256:hand"


@pytest.mark.parametrize("value, previous, recorded, status, origin", [
    # The status names the value: the token, whatever the annotation says.
    (OURS, None, OURS, OURS, CURRENT),
    (OURS, None, None, OURS, CURRENT),  # minted before hashes were recorded on Secrets
    (OURS, None, HAND, OURS, CURRENT),
    # A rotation wrote its successor (and recorded it), the status not yet.
    (NEXT, OURS, NEXT, OURS, ROTATION_UNRECORDED),
    # A crash before the first status: the recorded hash proves the value is tokenwarden's.
    (OURS, None, OURS, None, UNRECORDED),
    # A value changed by hand is refused, status or not.
    (HAND, None, OURS, OURS, TAMPERED),
    (HAND, None, None, OURS, TAMPERED),
    (HAND, None, OURS, None, TAMPERED),
    (HAND, None, None, None, TAMPERED),
    (HAND, OURS, OURS, OURS, TAMPERED),  # the hand-written value beside ours, not recorded
    (HAND, None, HAND, NEXT, TAMPERED),  # recorded by hand too: the status still decides
    (HAND, HAND, HAND, OURS, TAMPERED),
    (None, None, OURS, OURS, TAMPERED),  # the token key removed
    (None, OURS, OURS, None, TAMPERED),
])
def test_the_status_decides_which_value_is_the_token(value, previous, recorded, status, origin):
    assert secret_value_origin(value, previous, recorded, status) == origin


@pytest.mark.parametrize("value, previous, status, kept", [
    (OURS, None, OURS, "token"),
    (OURS, HAND, OURS, "token"),
    (NEXT, OURS, OURS, "token.previous"),  # a rotation whose status was never written
    (HAND, OURS, OURS, "token.previous"),  # the successor is minted anew, never taken from the Secret
    (HAND, None, OURS, None),
    (HAND, HAND, OURS, None),
    (None, None, OURS, None),
    (OURS, None, None, None),
])
def test_a_rotation_keeps_only_the_token_the_status_names(value, previous, status, kept):
    assert rotation_predecessor(value, previous, status) == kept
