"""The orphan collector considers only Secrets whose controlling owner is a token of ours."""
from __future__ import annotations

import kopf
import pytest

from tokenwarden.handlers._orphans import token_owner

OURS = {"apiVersion": "tokenwarden.io/v1alpha1", "kind": "ServiceToken", "name": "t", "uid": "u1", "controller": True}


@pytest.mark.parametrize("refs, ours", [
    ([OURS], True),
    ([{**OURS, "kind": "IngestionAPIKey"}], True),
    ([], False),  # labelled by a mirroring tool, no owner
    ([{**OURS, "controller": False}], False),  # owned, not controlled
    ([{**OURS, "apiVersion": "example.com/v1"}], False),  # a namesake kind of another group
    ([{**OURS, "kind": "ServiceAccount"}], False),
    ([{**OURS, "uid": ""}], False),
    ([{"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "u2", "controller": True}], False),
])
def test_only_a_controlling_token_makes_a_secret_ours(refs, ours):
    body = kopf.Body({"metadata": {"name": "s", "ownerReferences": refs}})
    assert (token_owner(body) is not None) is ours
