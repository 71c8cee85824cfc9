"""A token records the uid of the account it is minted for (status.accountUID)."""
from __future__ import annotations

from types import SimpleNamespace

from tokenwarden.api import ServiceTokenSpec
from tokenwarden.handlers._indexes import Indexes
from tokenwarden.handlers._mint import _account_uid


def _memo(*accounts: tuple[str, str, str]) -> SimpleNamespace:
    indexes = Indexes(["reader"])
    for name, uid, created in accounts:
        indexes.observe("ServiceAccount", {"kind": "ServiceAccount", "metadata": {
            "name": name, "namespace": "team", "uid": uid, "creationTimestamp": created}, "spec": {}})
    return SimpleNamespace(indexes=indexes)


def _spec(account: str | None) -> ServiceTokenSpec:
    return ServiceTokenSpec.model_validate({"serviceAccountName": account} if account else {})


def test_the_accounts_uid_is_recorded():
    memo = _memo(("ingest", "u-1", "2026-01-01T00:00:00Z"))
    assert _account_uid(_spec("ingest"), "team", memo) == "u-1"
    assert _account_uid(_spec("other"), "team", memo) is None


def test_a_token_minted_before_the_account_was_created_is_not_bound_to_it():
    memo = _memo(("ingest", "u-2", "2026-03-01T00:00:00Z"))
    assert _account_uid(_spec("ingest"), "team", memo, created_by="2026-02-01T00:00:00Z") is None
    assert _account_uid(_spec("ingest"), "team", memo, created_by="2026-03-01T00:00:00Z") == "u-2"
