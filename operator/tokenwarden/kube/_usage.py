"""The per-namespace TokenUsage object: when each credential was last verified.

The authenticator writes it; the operator copies newer times into each credential's
status.lastUsedAt. It authorises nothing, so the authenticator needs no right to change
a token.
"""
from __future__ import annotations

from kubernetes import client
from kubernetes.client.rest import ApiException

from tokenwarden.kube._errors import translated
from tokenwarden.kube._objects import get_object, patch_status
from tokenwarden.kube._resources import (
    API_VERSION,
    GROUP,
    INGESTION_KEYS,
    MANAGED_BY,
    MANAGED_BY_VALUE,
    SERVICE_ACCOUNTS,
    SERVICE_TOKENS,
    TOKEN_USAGES,
    USAGE_OBJECT,
    VERSION,
)

# status field of a TokenUsage → the kind whose names it holds
# (serviceAccounts: when a workload identity of the account was last verified)
SECTIONS = {"serviceTokens": SERVICE_TOKENS.kind, "ingestionAPIKeys": INGESTION_KEYS.kind,
            "serviceAccounts": SERVICE_ACCOUNTS.kind}
SECTION_OF = {kind: section for section, kind in SECTIONS.items()}


def read_usage(custom: client.CustomObjectsApi, namespace: str) -> dict | None:
    return get_object(custom, TOKEN_USAGES, namespace, USAGE_OBJECT)


def usage_entries(body: dict | None) -> dict[tuple[str, str], str]:
    """(kind, name) → time as written, from a TokenUsage (anything malformed is skipped)."""
    status = (body or {}).get("status") or {}
    entries = {}
    for section, kind in SECTIONS.items():
        names = status.get(section)
        if isinstance(names, dict):
            entries.update({(kind, name): when for name, when in names.items() if isinstance(when, str)})
    return entries


def write_usage(custom: client.CustomObjectsApi, namespace: str, status: dict, create: bool = True) -> None:
    """Merge ``status`` into the namespace's TokenUsage; when it is missing, create it first
    (unless ``create`` is False: only removals, nothing to record). Another authenticator
    replica may create it at the same moment: that is no error."""
    if patch_status(custom, TOKEN_USAGES, namespace, USAGE_OBJECT, status) or not create:
        return
    body = {"apiVersion": API_VERSION, "kind": TOKEN_USAGES.kind,
            "metadata": {"name": USAGE_OBJECT, "labels": {MANAGED_BY: MANAGED_BY_VALUE}}}
    with translated(f"creating {TOKEN_USAGES.kind} {namespace}/{USAGE_OBJECT}"):
        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, TOKEN_USAGES.plural, body)
        except ApiException as exc:
            if exc.status != 409:  # 409: created meanwhile, by another replica
                raise
    patch_status(custom, TOKEN_USAGES, namespace, USAGE_OBJECT, status)
