"""Keep a TokenIndex current from watches of tokens, keys and accounts (kopf, own registry)."""
from __future__ import annotations

from collections.abc import Callable

import kopf

from tokenwarden import policies
from tokenwarden.authn._index import Identity, TokenIndex
from tokenwarden.authn._metrics import TOKENS_BY_PHASE
from tokenwarden.kube._resources import GROUP, INGESTION_KEYS, SERVICE_ACCOUNTS, SERVICE_TOKENS, VERSION


def identity_from(kind: str, body: kopf.Body) -> tuple[Identity, list[tuple[str, object]]] | None:
    status = body.get("status") or {}
    token_hash = status.get("tokenHash")
    if not token_hash:
        return None
    spec = body.get("spec") or {}
    identity = Identity(
        kind=kind,
        namespace=body["metadata"]["namespace"],
        name=body["metadata"]["name"],
        account=spec.get("serviceAccountName") if kind == SERVICE_TOKENS.kind else None,
        roles=tuple(status.get("effectiveRoles") or ()),
        phase=status.get("phase"),
        expires_at=policies.parse_time(status.get("expiresAt")),
        project=spec.get("project") if kind == INGESTION_KEYS.kind else None,
        audiences=tuple(spec.get("audiences") or ()) if kind == SERVICE_TOKENS.kind else (),
    )
    hashes: list[tuple[str, object]] = [(token_hash, None)]
    previous = status.get("previousTokenHash")
    until = policies.parse_time(status.get("previousValidUntil"))
    if previous and until:
        hashes.append((previous, until))
    return identity, hashes


def build_registry(index: TokenIndex, forget: Callable[[tuple[str, str, str]], None]) -> kopf.OperatorRegistry:
    """Event handlers that mirror the cluster into ``index``; no writes, no finalizers.
    ``forget((kind, namespace, name))`` is told of each credential deleted."""
    registry = kopf.OperatorRegistry()
    phases: dict[tuple[str, str, str], str] = {}

    def _count(key, phase: str | None) -> None:
        old = phases.pop(key, None)
        if old:
            TOKENS_BY_PHASE.labels(kind=key[0], phase=old).dec()
        if phase:
            phases[key] = phase
            TOKENS_BY_PHASE.labels(kind=key[0], phase=phase).inc()

    def track(kind: str):
        def on_token(type: str, body: kopf.Body, **_) -> None:
            namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
            key = (kind, namespace, name)
            if type == "DELETED":
                index.remove(kind, namespace, name)
                forget(key)
                _count(key, None)
                return
            found = identity_from(kind, body)
            if found is None:
                index.remove(kind, namespace, name)
            else:
                index.put(found[0], found[1])
            _count(key, (body.get("status") or {}).get("phase") or "Pending")
        return on_token

    for resource in (SERVICE_TOKENS, INGESTION_KEYS):
        kopf.on.event(GROUP, VERSION, resource.plural, registry=registry,
                      id=f"index-{resource.plural}")(track(resource.kind))

    @kopf.on.event(GROUP, VERSION, SERVICE_ACCOUNTS.plural, registry=registry, id="index-accounts")
    def on_account(type: str, body: kopf.Body, **_) -> None:
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        disabled = type != "DELETED" and bool((body.get("spec") or {}).get("disabled"))
        index.set_account_disabled(namespace, name, disabled)

    return registry
