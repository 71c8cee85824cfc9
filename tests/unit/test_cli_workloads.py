"""`service-account create --workload-identity` and the WORKLOADS column, without a cluster."""
from __future__ import annotations

import json

import click
import pytest
import yaml

from tokenwarden.cli._accounts import describe_account, workload_identities, workloads_cell
from tokenwarden.cli._output import format_data, format_table


def _account(workloads: list[str] | None = None, bound: int | None = None, **spec) -> dict:
    obj = {"metadata": {"name": "profiler", "namespace": "observability"},
           "spec": {**spec, **({"workloadIdentities": [{"serviceAccountName": w} for w in workloads]}
                               if workloads is not None else {})},
           "status": {"tokenCount": 0, "conditions": [{"type": "Ready", "status": "True", "message": "ok"}]}}
    if bound is not None:
        obj["status"]["workloadIdentities"] = bound
        obj["status"]["lastUsedAt"] = "2026-11-26T04:00:00Z"
    return obj


def test_repeated_flags_become_the_spec_in_order():
    assert workload_identities(("profiling-agent", "otel-collector"), "observability") == [
        {"serviceAccountName": "profiling-agent"}, {"serviceAccountName": "otel-collector"}]
    assert workload_identities((), "observability") is None


@pytest.mark.parametrize("given", ["system:serviceaccount:observability:agent", "observability/agent"])
def test_a_qualified_name_of_the_accounts_namespace_is_accepted(given):
    assert workload_identities((given,), "observability") == [{"serviceAccountName": "agent"}]


@pytest.mark.parametrize("given, words", [
    (("Agent_1",), "invalid name 'Agent_1'"),
    (("a", "b", "a"), "'a' is given more than once"),
    (("system:serviceaccount:kube-system:agent",), "in namespace 'kube-system', not 'observability'"),
    (("kube-system/agent",), "create the account there (-n kube-system)"),
])
def test_bad_workload_identities_name_the_problem_and_the_fix(given, words):
    with pytest.raises(click.BadParameter) as refused:
        workload_identities(given, "observability")
    assert words in refused.value.message and refused.value.param_hint == "--workload-identity"


def test_list_data_names_the_workloads_and_how_many_are_bound():
    item = describe_account(_account(["profiling-agent", "otel-collector"], bound=2, description="agents"))
    assert list(item) == ["name", "namespace", "description", "disabled", "tokens", "workloadIdentities",
                          "workloadIdentitiesBound", "lastUsedAt", "ready", "message"]
    assert item["workloadIdentities"] == ["profiling-agent", "otel-collector"]
    assert (item["workloadIdentitiesBound"], item["lastUsedAt"]) == (2, "2026-11-26T04:00:00Z")
    assert json.loads(format_data([item], "json")) == [item] == yaml.safe_load(format_data([item], "yaml"))


def test_an_account_without_workloads_or_status_lists_empty():
    item = describe_account({"metadata": {"name": "p", "namespace": "n"}})
    assert (item["workloadIdentities"], item["workloadIdentitiesBound"], item["lastUsedAt"]) == ([], 0, None)
    assert workloads_cell(item) == "[]"


@pytest.mark.parametrize("workloads, bound, cell", [
    (["profiling-agent"], 1, "[profiling-agent]"),
    (["profiling-agent", "otel-collector"], 2, "[profiling-agent otel-collector]"),
    (["profiling-agent", "otel-collector"], 1, "[profiling-agent otel-collector] (1 bound)"),
    (["profiling-agent"], None, "[profiling-agent] (0 bound)"),  # the operator has not seen it yet
])
def test_workloads_cell_says_when_one_is_not_bound(workloads, bound, cell):
    assert workloads_cell(describe_account(_account(workloads, bound))) == cell


def test_the_table_has_a_workloads_column():
    item = describe_account(_account(["profiling-agent"], bound=1))
    assert format_table(["NAME", "DISABLED", "TOKENS", "WORKLOADS", "READY", "DESCRIPTION"],
                        [[item["name"], "false", item["tokens"], workloads_cell(item), item["ready"], "-"]]) == [
        "NAME     | DISABLED | TOKENS | WORKLOADS         | READY | DESCRIPTION",
        "profiler | false    | 0      | [profiling-agent] | True  | -",
    ]
