"""The admission webhook's handlers and the leak-report endpoint's parsing under generated input:
any spec, annotation or report body is allowed or refused with a clear message (an
AdmissionError, a ReportRefused), never another exception, which kopf or aiohttp would answer
with a 500 and a traceback in the log."""
from __future__ import annotations

import asyncio
import json

import kopf
from hypothesis import event, given
from hypothesis import strategies as st

from tokenwarden.handlers import _admission
from tokenwarden.policies._leak_reports import ReportRefused, check_signature, parse_reports

from ..unit.test_admission import ACCOUNTS, TOKENS, body, memo
from .strategies import JSON, nested

KINDS = {"validate-account": "ServiceAccount", "validate-binding": "RoleBinding",
         "validate-token": "ServiceToken", "validate-key": "IngestionAPIKey"}
# Specs near the real ones: known fields with hostile values, and anything at all.
FIELDS = ("serviceAccountName", "roles", "project", "ttl", "expiration", "audiences", "import", "rotation",
          "secretName", "secretTemplate", "description", "disabled", "workloadIdentities")
SPECS = st.one_of(st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=5),
                  st.dictionaries(st.text(max_size=12), JSON, max_size=4))
ANNOTATIONS = st.dictionaries(st.sampled_from(["tokenwarden.io/rotate", "tokenwarden.io/leaked", "example.com/x"]),
                              st.text(max_size=300), max_size=3)


def _object(kind: str, spec: dict, annotations: dict) -> dict:
    found = body(kind, "fuzzed", spec)
    found["metadata"]["annotations"] = annotations
    return found


@given(webhook=st.sampled_from(sorted(_admission.WEBHOOKS)), spec=SPECS, old_spec=SPECS, annotations=ANNOTATIONS,
       update=st.booleans())
def test_any_spec_is_allowed_or_refused_with_a_message(webhook, spec, old_spec, annotations, update):
    kind = KINDS[webhook]
    _, operations, validate = _admission.WEBHOOKS[webhook]
    operation = "UPDATE" if update and "UPDATE" in operations else "CREATE"
    new = _object(kind, spec, annotations)
    old = _object(kind, old_spec, {}) if operation == "UPDATE" else None
    # A memo with no API client: a check that must ask the API server refuses, failing closed.
    settled = memo(ACCOUNTS + TOKENS, live=ACCOUNTS + TOKENS)
    try:
        asyncio.run(validate(name="fuzzed", namespace="team", spec=spec, operation=operation, old=old, new=new,
                             memo=settled, userinfo={"username": "mallory", "groups": ["system:authenticated"]}))
        event("allowed")
    except kopf.AdmissionError as refused:
        event("refused")
        assert str(refused) and "Traceback" not in str(refused)


@given(raw=st.one_of(st.binary(max_size=300), JSON.map(lambda value: json.dumps(value).encode()), nested(),
                     st.builds(lambda n: b'[{"token": "t", "type": ' + n, nested())))
def test_any_leak_report_body_is_parsed_or_refused_with_a_400(raw):
    try:
        reports = parse_reports(raw)
    except ReportRefused as refused:
        event("refused")
        assert refused.status == 400 and str(refused)
    else:
        event("parsed")
        assert all(report.token for report in reports)


@given(key_id=st.one_of(st.none(), st.text(max_size=20)), signature=st.one_of(st.none(), st.text(max_size=120)),
       raw=st.binary(max_size=100))
def test_any_signature_header_is_refused_without_a_configured_key(key_id, signature, raw):
    try:
        check_signature({}, key_id, signature, raw)
    except ReportRefused as refused:
        assert refused.status in (401, 403)
    else:
        raise AssertionError("a report passed with no key configured")
