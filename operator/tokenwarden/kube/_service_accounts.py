"""Kubernetes' own ServiceAccounts, which tokenwarden ServiceAccounts name as workload identities."""
from __future__ import annotations

import json

from kubernetes import client

from tokenwarden.kube._errors import translated


def service_account_names(core: client.CoreV1Api, namespace: str) -> set[str]:
    """Names of the Kubernetes ServiceAccounts of ``namespace`` (one listing)."""
    with translated(f"listing Kubernetes ServiceAccounts of {namespace}"):
        listing = core.list_namespaced_service_account(namespace, _preload_content=False)
    return {item["metadata"]["name"] for item in json.loads(listing.data).get("items") or []}
