"""Kubernetes' own ServiceAccounts, which tokenwarden ServiceAccounts name as workload identities."""
from __future__ import annotations

from collections.abc import Iterable

from kubernetes import client

from tokenwarden.kube._errors import ApiNotFound, translated


def existing_service_accounts(core: client.CoreV1Api, namespace: str, names: Iterable[str]) -> set[str]:
    """Which of ``names`` are Kubernetes ServiceAccounts of ``namespace``: each read by name,
    so a namespace with thousands of others costs no more than one with none."""
    found = set()
    for name in dict.fromkeys(names):
        try:
            with translated(f"reading Kubernetes ServiceAccount {namespace}/{name}"):
                core.read_namespaced_service_account(name, namespace, _preload_content=False).release_conn()
        except ApiNotFound:
            continue
        found.add(name)
    return found
