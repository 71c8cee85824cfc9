"""Find the credential a leaked value belongs to, by its hash, and record the leak on it.

One path for the CLI (as its user: RBAC decides what it sees and may patch) and for the
operator's leak-report endpoint. The leak is recorded as the value's hash in the annotation
tokenwarden.io/leaked: the authenticator refuses that hash from the moment its watch sees
the annotation, and the operator, whenever it runs, mints a successor with no overlap.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from kubernetes import client

from tokenwarden import policies
from tokenwarden.kube._errors import ApiConflict, ApiNotFound, translated
from tokenwarden.kube._objects import get_object, iter_objects
from tokenwarden.kube._resources import GROUP, INGESTION_KEYS, SERVICE_TOKENS, VERSION, Resource

KINDS = (SERVICE_TOKENS, INGESTION_KEYS)


@dataclass(frozen=True)
class Leaked:
    """A credential that holds a leaked value."""

    resource: Resource
    namespace: str
    name: str
    token_hash: str               # the value's hash as the credential keeps it (sha256 or hmac)
    token_id: str | None = None
    secret_name: str | None = None
    imported: bool = False
    restart_targets: tuple[str, ...] = ()  # "DaemonSet/agent"
    phase: str | None = None

    @property
    def what(self) -> str:
        return f"{self.resource.kind} {self.namespace}/{self.name}"


def holding(body: dict, resource: Resource, hashes: Iterable[str]) -> Leaked | None:
    """The credential ``body`` if its token (or its previous one, in an overlap) has one of ``hashes``."""
    status = body.get("status") or {}
    own = {status.get("tokenHash"), status.get("previousTokenHash")} - {None}
    found = next((h for h in hashes if h in own), None)
    if found is None:
        return None
    spec, meta = body.get("spec") or {}, body["metadata"]
    targets = ((spec.get("rotation") or {}).get("restartTargets") or [])
    return Leaked(resource, meta["namespace"], meta["name"], found, status.get("tokenId"),
                  status.get("secretName"), bool(spec.get("import")),
                  tuple(f"{t.get('kind')}/{t.get('name')}" for t in targets), status.get("phase"))


def find_leaked(custom: client.CustomObjectsApi, hashes: Iterable[str], scopes: Iterable[str | None],
                kinds: Iterable[Resource] = KINDS) -> Iterator[Leaked]:
    """Every credential holding one of ``hashes``, in each scope (a namespace; None: all)."""
    hashes = tuple(hashes)
    for scope in scopes:
        for resource in kinds:
            for body in iter_objects(custom, resource, scope):
                found = holding(body, resource, hashes)
                if found is not None:
                    yield found


def record_leak(custom: client.CustomObjectsApi, leaked: Leaked, attempts: int = 5) -> dict | None:
    """Add the leaked hash to the credential's tokenwarden.io/leaked annotation, written on the
    version read (a conflict reads again). Returns the object as written; None when it no
    longer holds the value (deleted, or rotated meanwhile: the value is refused already)."""
    for _ in range(attempts):
        body = get_object(custom, leaked.resource, leaked.namespace, leaked.name)
        if body is None or holding(body, leaked.resource, (leaked.token_hash,)) is None:
            return None
        meta = body["metadata"]
        current = (meta.get("annotations") or {}).get(policies.LEAKED_ANNOTATION)
        if leaked.token_hash in policies.leaked_hashes(current):
            return body  # recorded already
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"], "annotations": {
            policies.LEAKED_ANNOTATION: policies.with_leak(current, leaked.token_hash)}}}
        try:
            with translated(f"recording the leak on {leaked.what}"):
                return custom.patch_namespaced_custom_object(GROUP, VERSION, leaked.namespace,
                                                             leaked.resource.plural, leaked.name, patch)
        except ApiConflict:
            continue
        except ApiNotFound:
            return None
    raise ApiConflict(f"{leaked.what} kept changing while its leak was recorded; run the command again")
