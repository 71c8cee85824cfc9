from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from tokenwarden.api import (
    IngestionAPIKeySpec,
    RoleBindingSpec,
    ServiceTokenSpec,
    describe_validation_error,
    parse_expiration,
)
from tokenwarden.api import crd

REPO = Path(__file__).resolve().parents[2]
ISSUED = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def test_committed_crds_match_the_models():
    stale = crd.drift(REPO)
    assert not stale, f"regenerate with `python -m tokenwarden.api`: {[str(p) for p in stale]}"


def _walk(node, path="$"):
    yield path, node
    for name, sub in (node.get("properties") or {}).items():
        yield from _walk(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _walk(node[key], f"{path}.{key}")


@pytest.mark.parametrize("info", crd.KINDS, ids=lambda i: i.kind)
def test_schemas_are_structural_and_documented(info):
    schema = crd.crd(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "type" in node, path
        assert not {"$ref", "anyOf", "allOf", "oneOf", "title"} & set(node), path
        if path.count(".") >= 2 and path.split(".")[1] in ("spec", "status") and not path.endswith(
                ("items", "additionalProperties")) and "conditions.items" not in path:
            assert node.get("description"), f"{path} has no description for kubectl explain"


def test_printer_columns_and_names():
    tokens = crd.crd(next(k for k in crd.KINDS if k.kind == "ServiceToken"))
    names = tokens["spec"]["names"]
    assert names["shortNames"] == ["tst"] and names["categories"] == ["tokenwarden"]
    columns = [c["name"] for c in tokens["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns == ["ID", "Account", "Roles", "Phase", "Expires", "Last Used", "Age"]


def test_date_expiration_lasts_through_that_day_utc():
    spec = ServiceTokenSpec(roles=["reader"], expiration="2027-01-31")
    assert spec.expires_at(ISSUED) == datetime(2027, 2, 1, tzinfo=timezone.utc)
    assert parse_expiration("2027-01-31T10:00:00+02:00") == datetime(2027, 1, 31, 8, tzinfo=timezone.utc)


def test_ttl_counts_from_issue():
    assert IngestionAPIKeySpec(ttl="90d").expires_at(ISSUED) == ISSUED + timedelta(days=90)
    assert IngestionAPIKeySpec().expires_at(ISSUED) is None


@pytest.mark.parametrize("spec, problem", [
    ({"roles": ["reader"], "expiration": "2027-01-01", "ttl": "1h"}, "at most one of spec.expiration and spec.ttl"),
    ({"roles": ["reader"], "expiration": "2027-02-30"}, "expiration"),
    ({"roles": ["reader"], "ttl": "forever"}, "spec.ttl"),
    ({"roles": ["reader"], "ttl": "0s"}, "longer than 0s"),
    ({}, "needs spec.roles"),
    ({"serviceAccountName": "team-b/agents"}, "spec.serviceAccountName"),
    ({"roles": ["Reader!"]}, "invalid role name"),
    ({"roles": ["reader"], "secretName": "Not_Valid"}, "spec.secretName"),
    ({"roles": ["reader"], "colour": "blue"}, "spec.colour"),
    ({"roles": ["reader"], "expiration": "2099-01-01", "rotation": {"renewBefore": "1d"}}, "rotation needs spec.ttl"),
    ({"roles": ["reader"], "ttl": "1h", "rotation": {"renewBefore": "1h"}}, "shorter than ttl"),
])
def test_invalid_token_specs_are_described(spec, problem):
    with pytest.raises(ValidationError) as exc:
        ServiceTokenSpec.model_validate(spec)
    assert problem in describe_validation_error(exc.value)


def test_camel_case_fields_and_import_alias():
    spec = ServiceTokenSpec.model_validate({
        "serviceAccountName": "agents", "secretName": "agent-token", "ttl": "30d",
        "secretTemplate": {"labels": {"team": "a"}},
        "rotation": {"renewBefore": "7d", "restartTargets": [{"kind": "DaemonSet", "name": "agent"}]},
        "import": {"secretRef": {"name": "old-key"}},
    })
    assert spec.service_account_name == "agents"
    assert spec.import_.secret_ref.key == "token"
    assert spec.rotation.restart_targets[0].kind == "DaemonSet"


def test_binding_needs_roles():
    with pytest.raises(ValidationError):
        RoleBindingSpec.model_validate({"serviceAccountName": "agents", "roles": []})
