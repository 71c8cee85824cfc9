"""The v1alpha1 models: parsing, defaults, expiry, and the messages a refusal carries."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from tokenwarden.api import (
    IngestionAPIKey,
    IngestionAPIKeySpec,
    RoleBinding,
    RoleBindingSpec,
    ServiceAccount,
    ServiceAccountSpec,
    ServiceToken,
    ServiceTokenSpec,
    ServiceTokenStatus,
    describe_validation_error,
    parse_expiration,
)

ISSUED = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def _refusal(model, data: dict) -> str:
    with pytest.raises(ValidationError) as exc:
        model.model_validate(data)
    return describe_validation_error(exc.value)


# -- expiry -------------------------------------------------------------------

@pytest.mark.parametrize("spec_class", [ServiceTokenSpec, IngestionAPIKeySpec])
def test_a_date_is_valid_through_that_whole_day_utc(spec_class):
    roles = {"roles": ["reader"]} if spec_class is ServiceTokenSpec else {}
    spec = spec_class.model_validate({**roles, "expiration": "2027-01-31"})
    end = spec.expires_at(ISSUED)
    assert end == datetime(2027, 2, 1, tzinfo=timezone.utc)  # exclusive: 2027-01-31T23:59:59.999 is valid
    assert end.tzinfo is not None


@pytest.mark.parametrize("text, instant", [
    ("2027-01-31T10:00:00Z", datetime(2027, 1, 31, 10, tzinfo=timezone.utc)),
    ("2027-01-31T10:00:00+02:00", datetime(2027, 1, 31, 8, tzinfo=timezone.utc)),
    ("2027-01-31T10:00:00.250-01:30", datetime(2027, 1, 31, 11, 30, 0, 250000, tzinfo=timezone.utc)),
])
def test_an_rfc3339_time_ends_at_that_instant_in_utc(text, instant):
    assert parse_expiration(text) == instant
    assert parse_expiration(text).utcoffset() == timedelta(0)
    assert ServiceTokenSpec(roles=["reader"], expiration=text).expires_at(ISSUED) == instant


def test_ttl_counts_from_issue_and_no_expiry_means_never():
    assert ServiceTokenSpec(roles=["reader"], ttl="1h30m").expires_at(ISSUED) == ISSUED + timedelta(minutes=90)
    assert IngestionAPIKeySpec(ttl="90d").expires_at(ISSUED) == ISSUED + timedelta(days=90)
    assert IngestionAPIKeySpec().expires_at(ISSUED) is None


@pytest.mark.parametrize("text", [
    "2027-02-30", "2027-1-31", "31-01-2027", "2027-01-31T10:00:00", "2027-01-31 10:00:00Z",
    "2027-01-31T10:00:00+0200", "2027-01-31T25:00:00Z", "tomorrow",
])
def test_expirations_the_api_server_would_refuse_are_refused_here_too(text):
    with pytest.raises(ValueError, match="use yyyy-MM-dd or an RFC 3339 time"):
        parse_expiration(text)
    message = _refusal(ServiceTokenSpec, {"roles": ["r"], "expiration": text})
    assert "spec.expiration: invalid expiration" in message


# -- readable refusals --------------------------------------------------------

@pytest.mark.parametrize("spec, line", [
    ({"roles": ["reader"], "ttl": "forever"},
     "spec.ttl: invalid duration 'forever': use a number and a unit s, m, h, d or w, e.g. 24h or 90d"),
    ({"roles": ["reader"], "ttl": "0s"}, "spec.ttl: must be longer than 0s"),
    ({"roles": ["reader"], "ttl": "100000d"}, "longer than the limit of 3650d"),
    ({"roles": ["reader"], "expiration": "2027-01-01", "ttl": "1h"},
     "spec: set at most one of spec.expiration and spec.ttl"),
    ({}, "spec: a token without spec.serviceAccountName needs spec.roles"),
    ({"roles": []}, "needs spec.roles"),
    ({"roles": ["reader", "Reader!"]}, "spec.roles.1: invalid role name 'Reader!'"),
    ({"serviceAccountName": "team-b/agents"}, "spec.serviceAccountName: invalid name 'team-b/agents'"),
    ({"roles": ["reader"], "secretName": "Not_Valid"}, "spec.secretName: invalid name 'Not_Valid'"),
    ({"roles": ["reader"], "secretName": "a" * 254}, "spec.secretName: String should have at most 253"),
    ({"roles": ["reader"], "colour": "blue"}, "spec.colour: Extra inputs are not permitted"),
    ({"roles": ["reader"], "expiration": "2099-01-01", "rotation": {"renewBefore": "1d"}},
     "spec: rotation needs spec.ttl"),
    ({"roles": ["reader"], "ttl": "1h", "rotation": {"renewBefore": "1h"}},
     "rotation.renewBefore must be shorter than ttl"),
    ({"roles": ["reader"], "ttl": "1h", "rotation": {"renewBefore": "0m"}},
     "spec.rotation.renewBefore: must be longer than 0s"),
    ({"roles": ["reader"], "ttl": "30d", "rotation": {"renewBefore": "1d", "restartTargets": [
        {"kind": "Pod", "name": "agent"}]}}, "spec.rotation.restartTargets.0.kind: Input should be 'Deployment'"),
    ({"roles": ["reader"], "import": {"secretRef": {}}}, "spec.import.secretRef.name: Field required"),
])
def test_invalid_token_specs_become_one_readable_line(spec, line):
    message = _refusal(ServiceTokenSpec, spec)
    assert line in message
    assert "\n" not in message and "Value error," not in message


def test_several_problems_are_joined_on_one_line():
    message = _refusal(RoleBindingSpec, {"roles": [], "project": 3})
    assert message.count("; ") == 2, message
    assert "spec.serviceAccountName: Field required" in message


def test_ingestion_keys_have_no_roles_or_import():
    assert "spec.roles" in _refusal(IngestionAPIKeySpec, {"roles": ["writer"]})
    assert "spec.import" in _refusal(IngestionAPIKeySpec, {"import": {"secretRef": {"name": "x"}}})


# -- parsing and defaults -----------------------------------------------------

def test_camel_case_on_the_wire_snake_case_in_python():
    spec = ServiceTokenSpec.model_validate({
        "serviceAccountName": "agents", "secretName": "agent-token", "ttl": "30d",
        "secretTemplate": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
        "rotation": {"renewBefore": "7d", "restartTargets": [{"kind": "DaemonSet", "name": "agent"}]},
    })
    assert spec.service_account_name == "agents" and spec.secret_template.labels == {"team": "a"}
    assert spec.rotation.restart_targets[0].kind == "DaemonSet"
    imported = ServiceTokenSpec.model_validate({"roles": ["reader"], "import": {"secretRef": {"name": "old-key"}}})
    assert imported.import_.secret_ref.key == "token"  # the default key
    assert imported.import_.secret_ref.namespace is None
    assert ServiceTokenSpec(service_account_name="agents").service_account_name == "agents"
    assert "serviceAccountName" in spec.model_dump(by_alias=True, exclude_none=True)
    wire = imported.model_dump(by_alias=True, exclude_none=True)
    assert wire["import"] == {"secretRef": {"name": "old-key", "key": "token"}}
    assert "import_" not in wire


def test_imported_keys_are_not_rotated_by_tokenwarden():
    assert "rotated by its owner" in _refusal(ServiceTokenSpec, {
        "roles": ["reader"], "ttl": "30d", "rotation": {"renewBefore": "7d"},
        "import": {"secretRef": {"name": "old-key"}}})


def test_service_account_defaults_and_binding_roles():
    assert ServiceAccountSpec().disabled is False
    binding = RoleBindingSpec.model_validate({"serviceAccountName": "agents", "roles": ["profile-writer", "r2"]})
    assert binding.roles == ["profile-writer", "r2"] and binding.project is None
    assert "spec.roles: List should have at least 1 item" in _refusal(
        RoleBindingSpec, {"serviceAccountName": "agents", "roles": []})


def test_workload_identities_name_kubernetes_service_accounts_once():
    spec = ServiceAccountSpec.model_validate(
        {"workloadIdentities": [{"serviceAccountName": "parca-agent"}, {"serviceAccountName": "otel"}]})
    assert [w.service_account_name for w in spec.workload_identities] == ["parca-agent", "otel"]
    assert ServiceAccountSpec().workload_identities is None
    assert "names parca-agent more than once" in _refusal(
        ServiceAccountSpec, {"workloadIdentities": [{"serviceAccountName": "parca-agent"}] * 2})
    assert "invalid name 'Parca_Agent'" in _refusal(
        ServiceAccountSpec, {"workloadIdentities": [{"serviceAccountName": "Parca_Agent"}]})
    assert "at most 32 items" in _refusal(
        ServiceAccountSpec, {"workloadIdentities": [{"serviceAccountName": f"sa-{i}"} for i in range(33)]})


def test_whole_objects_parse_as_the_api_server_returns_them():
    body = {
        "apiVersion": "tokenwarden.io/v1alpha1", "kind": "ServiceToken",
        "metadata": {"name": "agent", "namespace": "team-a", "uid": "u-1", "generation": 2},
        "spec": {"roles": ["writer"], "ttl": "24h"},
        "status": {"phase": "Active", "tokenId": "abc123", "effectiveRoles": ["writer"],
                   "conditions": [{"type": "Ready", "status": "True", "reason": "Minted",
                                   "lastTransitionTime": "2026-11-24T12:00:00Z"}],
                   "kopf": {"progress": {}}, "somethingNewer": 1},
    }
    token = ServiceToken.model_validate(body)
    assert token.metadata["name"] == "agent" and token.spec.ttl == "24h"
    assert token.status.conditions[0].type == "Ready" and token.status.phase == "Active"
    assert ServiceAccount.model_validate({"metadata": {"name": "a"}}).spec.disabled is False
    assert IngestionAPIKey().spec.expires_at(ISSUED) is None
    with pytest.raises(ValidationError):
        RoleBinding.model_validate({"metadata": {"name": "b"}})  # spec is required
    with pytest.raises(ValidationError):
        ServiceToken.model_validate({**body, "kind": "IngestionAPIKey"})


def test_status_rejects_what_the_schema_would_refuse():
    with pytest.raises(ValidationError):
        ServiceTokenStatus(phase="Gone")
    with pytest.raises(ValidationError):
        ServiceTokenStatus(token_hash="sha256:abc")
    assert ServiceTokenStatus(token_hash="sha256:" + "0" * 64).token_hash


@pytest.mark.parametrize("field,value", [
    ("roles", ["a:b"]), ("roles", ["x,admin"]), ("roles", ["reader@shop"]), ("roles", ["a" * 64]),
    ("project", "x,admin"), ("project", "evil@shop"), ("project", "Shop"), ("project", "a b"),
    ("project", "a" * 64),
])
def test_role_and_project_names_are_dns_labels(field, value):
    spec = {"serviceAccountName": "agents", "roles": ["reader"], field: value}
    refusal = _refusal(RoleBindingSpec, spec)
    assert f"spec.{field}" in refusal and ("not a DNS label" in refusal or "at most 63 characters" in refusal)


def test_a_uuid_project_fits():
    project = "3f2b8f0e-6c1d-4b7a-9e5f-0a1b2c3d4e5f"  # seed 000's projectID is a UUID
    assert RoleBindingSpec.model_validate(
        {"serviceAccountName": "agents", "roles": ["reader"], "project": project}).project == project
    assert IngestionAPIKeySpec.model_validate({"project": project}).project == project
