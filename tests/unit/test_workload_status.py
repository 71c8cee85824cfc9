"""An account's workload identities as its status shows them: bound, missing, listed twice."""
from __future__ import annotations

from tokenwarden.handlers._workloads import WorkloadListings
from tokenwarden.policies import workload_binding


def test_every_listed_service_account_that_exists_is_bound():
    binding = workload_binding("team", ["parca-agent", "otel"], {"parca-agent", "otel", "default"}, {})
    assert (binding.bound, binding.ok, binding.reason) == (2, True, "Bound")
    assert binding.message == "2 workload identities bound: parca-agent, otel"


def test_a_missing_service_account_is_named_with_the_fix():
    binding = workload_binding("team", ["parca-agent", "otel"], {"otel"}, {})
    assert (binding.bound, binding.ok, binding.reason) == (1, False, "ServiceAccountNotFound")
    assert "Kubernetes ServiceAccount parca-agent does not exist in namespace team" in binding.message
    assert "kubectl create serviceaccount parca-agent -n team" in binding.message
    assert "remove it from spec.workloadIdentities" in binding.message


def test_a_service_account_listed_by_another_account_too_is_not_bound():
    binding = workload_binding("team", ["otel"], {"otel"}, {"otel": ["collectors"]})
    assert (binding.bound, binding.ok, binding.reason) == (0, False, "ListedByAnotherAccount")
    assert "also listed by ServiceAccount collectors" in binding.message


def test_listings_tell_which_other_accounts_a_change_touches():
    listings = WorkloadListings()
    assert listings.update("team", "agents", ["otel"]) == set()
    assert listings.update("team", "collectors", ["otel", "parca"]) == {"agents"}
    assert listings.others("team", "agents", ["otel"]) == {"otel": {"collectors"}}
    assert listings.update("team", "collectors", ["otel", "parca"]) == set()  # unchanged: nothing to recount
    assert listings.listing("team", "parca") == {"collectors"} and listings.listing("other", "otel") == set()
    assert listings.update("team", "collectors", []) == {"agents"}
    assert listings.others("team", "agents", ["otel"]) == {"otel": set()}
    assert listings.accounts == {("team", "otel"): {"agents"}}
