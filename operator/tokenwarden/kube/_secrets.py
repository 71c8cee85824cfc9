"""The Secrets tokens live in. The plaintext token leaves this module only to its caller."""
from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.rest import ApiException

from tokenwarden.kube._errors import ApiNotFound, translated
from tokenwarden.kube._resources import (
    API_VERSION,
    ISSUED_AT_ANNOTATION,
    KIND_LABEL,
    MANAGED_BY,
    MANAGED_BY_VALUE,
    TOKEN_HASH_ANNOTATION,
    TOKEN_ID_ANNOTATION,
    TOKEN_LABEL,
)

TOKEN_KEY = "token"
PREVIOUS_KEY = "token.previous"


@dataclass(frozen=True)
class Owner:
    kind: str
    name: str
    uid: str


@dataclass(frozen=True)
class TokenSecret:
    """A token Secret as found: ``owned`` tells whether ``owner`` controls it."""

    name: str
    owned: bool
    token: str | None = None
    token_id: str | None = None
    issued_at: str | None = None
    previous: str | None = None
    recorded_hash: str | None = None  # the hash tokenwarden recorded as it wrote the token
    resource_version: str | None = None  # as read: a write made from what was read carries it

    def __repr__(self) -> str:  # never print the token
        return f"TokenSecret(name={self.name!r}, owned={self.owned}, token_id={self.token_id!r})"


class SecretExists(Exception):
    """A Secret of that name appeared between our read and our create."""


def _owned_by(secret: client.V1Secret, owner_uid: str) -> bool:
    refs = secret.metadata.owner_references or []
    return any(ref.uid == owner_uid and ref.controller for ref in refs)


def read_token_secret(core: client.CoreV1Api, namespace: str, name: str, owner: Owner) -> TokenSecret | None:
    """The Secret ``name``, or None when it does not exist."""
    try:
        with translated(f"reading Secret {namespace}/{name}"):
            secret = core.read_namespaced_secret(name, namespace)
    except ApiNotFound:
        return None
    if not _owned_by(secret, owner.uid):
        return TokenSecret(name=name, owned=False)
    return _as_owned(secret)


def _as_owned(secret: client.V1Secret) -> TokenSecret:
    meta = secret.metadata
    return _owned(meta.name, secret.data, meta.annotations, meta.resource_version)


def _owned(name: str, data: dict | None, annotations: dict | None, resource_version: str | None) -> TokenSecret:
    data, annotations = data or {}, annotations or {}
    # A value that is not text was not written by tokenwarden: decoded with replacement
    # characters, it matches no hash and is refused like any other value written by hand.
    token = base64.b64decode(data[TOKEN_KEY]).decode(errors="replace") if TOKEN_KEY in data else None
    previous = base64.b64decode(data[PREVIOUS_KEY]).decode(errors="replace") if PREVIOUS_KEY in data else None
    return TokenSecret(name=name, owned=True, token=token, previous=previous,
                       token_id=annotations.get(TOKEN_ID_ANNOTATION),
                       issued_at=annotations.get(ISSUED_AT_ANNOTATION),
                       recorded_hash=annotations.get(TOKEN_HASH_ANNOTATION),
                       resource_version=resource_version)


def iter_token_secrets(core: client.CoreV1Api, namespace: str | None,
                       page: int = 500) -> Iterator[tuple[str, str, TokenSecret]]:
    """Every Secret tokenwarden wrote (by its label) in ``namespace`` (None: all), read in
    pages: (namespace, uid of its controlling owner, the Secret as its owner reads it). Read
    as JSON, not as the client's models: a resync reads every token Secret."""
    kwargs: dict = {"label_selector": f"{MANAGED_BY}={MANAGED_BY_VALUE}", "limit": page, "_preload_content": False}
    while True:
        with translated("listing token Secrets"):
            if namespace:
                response = core.list_namespaced_secret(namespace, **kwargs)
            else:
                response = core.list_secret_for_all_namespaces(**kwargs)
            result = json.loads(response.data)
        for secret in result.get("items") or []:
            meta = secret["metadata"]
            owner = next((ref["uid"] for ref in meta.get("ownerReferences") or [] if ref.get("controller")), None)
            if owner:
                yield meta["namespace"], owner, _owned(meta["name"], secret.get("data"), meta.get("annotations"),
                                                       meta.get("resourceVersion"))
        if not (result.get("metadata") or {}).get("continue"):
            return
        kwargs["_continue"] = result["metadata"]["continue"]


def create_token_secret(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    owner: Owner,
    *,
    token: str,
    token_id: str,
    issued_at: str,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    token_hash: str | None = None,
) -> None:
    """Create the Secret; raise SecretExists if a Secret of that name is already there.
    ``token_hash`` (a minted token's, never an imported key's) is recorded beside it."""
    recorded = {TOKEN_HASH_ANNOTATION: token_hash} if token_hash else {}
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(
            name=name,
            namespace=namespace,
            labels={**(labels or {}), **_token_labels(owner)},
            annotations={**(annotations or {}), TOKEN_ID_ANNOTATION: token_id,
                         ISSUED_AT_ANNOTATION: issued_at, **recorded},
            owner_references=[client.V1OwnerReference(
                api_version=API_VERSION, kind=owner.kind, name=owner.name, uid=owner.uid,
                controller=True, block_owner_deletion=True)],
        ),
        type="Opaque",
        data={TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    )
    try:
        core.create_namespaced_secret(namespace, body)
    except ApiException as exc:
        if exc.status == 409:
            raise SecretExists(name) from None
        with translated(f"creating Secret {namespace}/{name}"):
            raise


def _token_labels(owner: Owner) -> dict[str, str]:
    """The labels every token Secret carries: the operator's watch selects Secrets by them."""
    return {MANAGED_BY: MANAGED_BY_VALUE, TOKEN_LABEL: owner.name, KIND_LABEL: owner.kind.lower()}


def restore_token_labels(core: client.CoreV1Api, namespace: str, name: str, owner: Owner,
                         resource_version: str) -> None:
    """Put a token Secret's labels back (removed by hand, it left the operator's watch);
    ApiConflict when the Secret changed since it was read at ``resource_version``."""
    body = {"metadata": {"labels": _token_labels(owner), "resourceVersion": resource_version}}
    with translated(f"labelling Secret {namespace}/{name}"):
        core.patch_namespaced_secret(name, namespace, body)


def delete_token_secret(core: client.CoreV1Api, namespace: str, name: str, owner: Owner) -> bool:
    """Delete the Secret if ``owner`` controls it; True when it is gone."""
    found = read_token_secret(core, namespace, name, owner)
    if found is None:
        return True
    if not found.owned:
        return False
    try:
        with translated(f"deleting Secret {namespace}/{name}"):
            core.delete_namespaced_secret(name, namespace)
    except ApiNotFound:
        pass
    return True


@dataclass(frozen=True)
class SourceSecret:
    """A Secret as a key is imported from it: its labels and decoded data."""

    labels: dict[str, str]
    data: dict[str, bytes]

    def __repr__(self) -> str:  # never print a value
        return f"SourceSecret(keys={sorted(self.data)!r}, labels={self.labels!r})"


def _decoded(secret: client.V1Secret) -> dict[str, bytes]:
    data = {}
    for key, raw in (secret.data or {}).items():
        try:
            data[key] = base64.b64decode(raw)
        except ValueError:
            continue  # the API server stores valid base64 only
    return data


def read_source_secret(core: client.CoreV1Api, namespace: str, name: str) -> SourceSecret | None:
    """Secret ``name`` with its labels and decoded data; None when there is no such Secret."""
    try:
        with translated(f"reading Secret {namespace}/{name}"):
            secret = core.read_namespaced_secret(name, namespace)
    except ApiNotFound:
        return None
    return SourceSecret(dict(secret.metadata.labels or {}), _decoded(secret))


def read_secret_object(core: client.CoreV1Api, namespace: str, name: str) -> dict | None:
    """Secret ``name`` as the API serves it, without its data (metadata for decisions and
    events); None when there is no such Secret."""
    try:
        with translated(f"reading Secret {namespace}/{name}"):
            secret = core.read_namespaced_secret(name, namespace)
    except ApiNotFound:
        return None
    secret.data = secret.string_data = None
    return {**core.api_client.sanitize_for_serialization(secret), "apiVersion": "v1", "kind": "Secret"}


def read_secret_data(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, bytes] | None:
    """The decoded data of Secret ``name``; None when there is no such Secret."""
    found = read_source_secret(core, namespace, name)
    return found.data if found is not None else None


def text_of(data: dict[str, bytes], key: str) -> str | None:
    """``data[key]`` as text; None when absent or not UTF-8."""
    try:
        return data[key].decode("utf-8") if key in data else None
    except UnicodeDecodeError:
        return None


def update_token_secret(core: client.CoreV1Api, namespace: str, name: str, token: str, issued_at: str,
                        previous: str | None = None, *, token_hash: str | None = None,
                        token_id: str | None = None, drop_previous: bool = False,
                        resource_version: str | None = None) -> None:
    """Replace the token in a Secret we own (a re-hashed import, a rotation, a re-mint); with
    ``previous``, the rotated-out token stays beside it for the overlap window, and with
    ``drop_previous`` none does. ``token_hash`` (a minted token's) is recorded beside it.
    With ``resource_version`` (the Secret's as read), ApiConflict when it changed since."""
    data: dict[str, str | None] = {TOKEN_KEY: base64.b64encode(token.encode()).decode()}
    if previous is not None:
        data[PREVIOUS_KEY] = base64.b64encode(previous.encode()).decode()
    elif drop_previous:
        data[PREVIOUS_KEY] = None
    annotations = {ISSUED_AT_ANNOTATION: issued_at}
    if token_hash:
        annotations[TOKEN_HASH_ANNOTATION] = token_hash
    if token_id:
        annotations[TOKEN_ID_ANNOTATION] = token_id
    body = {"metadata": _precondition({"annotations": annotations}, resource_version), "data": data}
    with translated(f"updating Secret {namespace}/{name}"):
        core.patch_namespaced_secret(name, namespace, body)


def record_token_hash(core: client.CoreV1Api, namespace: str, name: str, token_hash: str) -> None:
    """Record the hash of the token a Secret holds (one minted before hashes were recorded)."""
    annotate_secret(core, namespace, name, {TOKEN_HASH_ANNOTATION: token_hash})


def annotate_secret(core: client.CoreV1Api, namespace: str, name: str, annotations: dict[str, str]) -> None:
    """Merge ``annotations`` into Secret ``name``'s (never a value: annotations are not secret)."""
    with translated(f"annotating Secret {namespace}/{name}"):
        core.patch_namespaced_secret(name, namespace, {"metadata": {"annotations": annotations}})


def drop_previous_token(core: client.CoreV1Api, namespace: str, name: str, resource_version: str) -> None:
    """Remove the rotated-out token from a Secret once its overlap has ended; ApiConflict when
    the Secret changed since it was read at ``resource_version``."""
    body = {"metadata": {"resourceVersion": resource_version}, "data": {PREVIOUS_KEY: None}}
    with translated(f"updating Secret {namespace}/{name}"):
        core.patch_namespaced_secret(name, namespace, body)


def _precondition(metadata: dict, resource_version: str | None) -> dict:
    return {**metadata, "resourceVersion": resource_version} if resource_version else metadata
