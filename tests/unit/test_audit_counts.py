"""bench/api_calls.py --startup: kube-apiserver's audit lines counted as LISTs and WATCHes per
resource, namespace and selector, and what is followed twice flagged."""
from __future__ import annotations

import importlib.util
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import yaml

from tokenwarden.devcluster import _cluster

_spec = importlib.util.spec_from_file_location("bench_audit", Path(__file__).parents[2] / "bench" / "_audit.py")
audit = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # bench/ is no package
_spec.loader.exec_module(audit)

SINCE = datetime(2026, 12, 7, 21, 0, 0, tzinfo=timezone.utc)
UNTIL = datetime(2026, 12, 7, 21, 1, 0, tzinfo=timezone.utc)
KOPF, CLIENT, BENCH = "kopf/1.38.0", "OpenAPI-Generator/37.0.3/python", "tokenwarden-bench"


def line(audit_id: str, verb: str, uri: str, resource: str, *, group: str = "", namespace: str = "",
         agent: str = CLIENT, received: str = "21:00:10", stage: str = "ResponseComplete", ended: str = "") -> str:
    ref = {"resource": resource, **({"apiGroup": group} if group else {}), **({"namespace": namespace} if namespace else {})}
    return json.dumps({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": audit_id, "stage": stage,
        "requestURI": uri, "verb": verb, "user": {"username": "admin"}, "userAgent": agent, "objectRef": ref,
        "responseStatus": {"code": 200}, "requestReceivedTimestamp": f"2026-12-07T{received}.000000Z",
        "stageTimestamp": f"2026-12-07T{ended or received}.500000Z"})


TOKENS = "/apis/tokenwarden.io/v1alpha1/servicetokens"
MANAGED = "/api/v1/secrets?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dtokenwarden"
LINES = [
    # servicetokens: listed by the operator's own client and by kopf, one page more, one watch
    line("a1", "list", f"{TOKENS}?limit=500", "servicetokens", group="tokenwarden.io"),
    line("a2", "list", f"{TOKENS}?limit=500", "servicetokens", group="tokenwarden.io", agent=KOPF),
    line("a3", "list", f"{TOKENS}?limit=500&continue=abc", "servicetokens", group="tokenwarden.io", agent=KOPF),
    line("a4", "watch", f"{TOKENS}?watch=true&resourceVersion=5", "servicetokens", group="tokenwarden.io",
         agent=KOPF, stage="ResponseStarted"),
    # token Secrets by label: a watch that ended (both stages), then one opened after it
    line("b1", "list", f"{MANAGED}&limit=500", "secrets"),
    line("b2", "watch", f"{MANAGED}&watch=true", "secrets", received="21:00:11", stage="ResponseStarted"),
    line("b2", "watch", f"{MANAGED}&watch=true", "secrets", received="21:00:11", ended="21:00:41"),
    line("b3", "watch", f"{MANAGED}&watch=true", "secrets", received="21:00:42", stage="ResponseStarted"),
    # one Secret by name in one namespace: apart from every other selector
    line("c1", "watch", "/api/v1/namespaces/ops/secrets?fieldSelector=metadata.name%3Dkey&watch=true", "secrets",
         namespace="ops", stage="ResponseStarted"),
    # not counted: the bench's own client, a GET, a list outside the window
    line("x1", "list", f"{TOKENS}?limit=500", "servicetokens", group="tokenwarden.io", agent=BENCH),
    line("x2", "get", f"{TOKENS[:-len('servicetokens')]}namespaces/ops/servicetokens/t-0", "servicetokens",
         group="tokenwarden.io", namespace="ops"),
    line("x3", "list", f"{TOKENS}?limit=500", "servicetokens", group="tokenwarden.io", received="21:01:30"),
    "",
]


def rows_by_key(lines=LINES):
    requests = audit.parse(lines, SINCE, UNTIL, ignore_agents=(BENCH,))
    return {(r.resource, r.namespace, r.selector): r for r in audit.count(requests)}


def test_each_request_counts_once_whatever_stages_it_was_written_at():
    rows = rows_by_key()
    assert set(rows) == {
        ("tokenwarden.io/servicetokens", "(all)", "all"),
        ("secrets", "(all)", "label app.kubernetes.io/managed-by=tokenwarden"),
        ("secrets", "ops", "field metadata.name=key"),
    }
    tokens = rows["tokenwarden.io/servicetokens", "(all)", "all"]
    assert (tokens.lists, tokens.pages, tokens.watches, tokens.reopened) == (2, 3, 1, 0)
    assert tokens.agents == {"kopf", "OpenAPI-Generator"}
    managed = rows["secrets", "(all)", "label app.kubernetes.io/managed-by=tokenwarden"]
    assert (managed.lists, managed.pages, managed.watches, managed.reopened) == (1, 1, 2, 1)
    by_name = rows["secrets", "ops", "field metadata.name=key"]
    assert (by_name.lists, by_name.watches) == (0, 1)


def test_a_listing_twice_is_flagged_and_a_watch_reopened_after_the_last_ended_is_not():
    assert audit.doubled(rows_by_key().values()) == [
        "tokenwarden.io/servicetokens in (all), all: listed 2 times",
        # nothing in a label selector and a name keeps them apart: the named Secret may carry the label
        "secrets: label app.kubernetes.io/managed-by=tokenwarden in (all) and field metadata.name=key in ops "
        "may select the same objects"]


def test_two_watches_open_at_once_are_flagged():
    second = line("b4", "watch", f"{MANAGED}&watch=true", "secrets", received="21:00:20", stage="ResponseStarted")
    flags = audit.doubled(rows_by_key(LINES + [second]).values())
    assert "secrets in (all), label app.kubernetes.io/managed-by=tokenwarden: 2 watches opened besides re-opened ones" \
        in flags


def test_an_unselected_watch_beside_a_selected_one_is_flagged():
    every = line("d1", "watch", "/api/v1/secrets?watch=true", "secrets", stage="ResponseStarted")
    flags = audit.doubled(rows_by_key(LINES + [every]).values())
    assert flags[1:] == [
        "secrets: all in (all) and label app.kubernetes.io/managed-by=tokenwarden in (all) may select the same objects",
        "secrets: all in (all) and field metadata.name=key in ops may select the same objects",
        "secrets: label app.kubernetes.io/managed-by=tokenwarden in (all) and field metadata.name=key in ops "
        "may select the same objects",
    ]


def test_selectors_that_cannot_select_the_same_object_are_disjoint():
    assert audit.selector_of("/api/v1/secrets?labelSelector=a%3D1&fieldSelector=metadata.name%3Dx&limit=5") \
        == "label a=1; field metadata.name=x"
    assert audit.selector_of("/api/v1/secrets?limit=5") == "all"
    assert audit.disjoint("label a=1", "label a==2")
    assert audit.disjoint("label a in (1, 2),b", "label a=3")
    assert not audit.disjoint("label a in (1,2)", "label a=2")
    assert audit.disjoint("label !a", "label a")
    assert not audit.disjoint("label a=1", "label b=1")
    assert not audit.disjoint("label a!=1", "label a=2")
    assert audit.disjoint("field metadata.name=x", "field metadata.name=y")
    assert not audit.disjoint("label a=1", "field metadata.name=y")
    assert not audit.disjoint("all", "label a=1")


def test_the_dev_control_planes_audit_policy_writes_no_request_received_stage(tmp_path):
    flags = _cluster.audit_flags(tmp_path / "audit.log", tmp_path / "policy.yaml")
    assert f"--audit-log-path={tmp_path / 'audit.log'}" in flags
    assert f"--audit-policy-file={tmp_path / 'policy.yaml'}" in flags
    policy = yaml.safe_load((tmp_path / "policy.yaml").read_text())
    assert policy["omitStages"] == ["RequestReceived"]
    assert policy["rules"] == [{"level": "Metadata"}]
