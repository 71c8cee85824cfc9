"""The cluster's import key: the Secret that imported keys are hashed (HMAC) with.

The operator creates it when it is missing; the authenticator reads it by name (a get,
then a watch whose field selector names that one Secret), so neither needs to list
Secrets it has no business with. The key itself leaves this module only to its caller.
"""
from __future__ import annotations

import base64
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from datetime import datetime

from kubernetes import client
from kubernetes.client.rest import ApiException

from tokenwarden.kube._certificates import follow_secret
from tokenwarden.kube._errors import ApiNotFound, translated
from tokenwarden.kube._resources import MANAGED_BY, MANAGED_BY_VALUE
from tokenwarden.tokens import IMPORT_KEY_BYTES

KEY_DATA = "key"
COMPONENT_LABEL = "app.kubernetes.io/component"
logger = logging.getLogger("tokenwarden.importkey")


class ImportKeyInvalid(Exception):
    """The Secret exists but holds no usable key; the message says what to do."""


def key_of(secret: client.V1Secret | Mapping) -> bytes:
    """The key in the Secret (a client object, or a watch event's or kopf's body);
    ImportKeyInvalid if it holds none."""
    if isinstance(secret, client.V1Secret):
        data, where = secret.data or {}, f"{secret.metadata.namespace}/{secret.metadata.name}"
    else:
        data, meta = secret.get("data") or {}, secret.get("metadata") or {}
        where = f"{meta.get('namespace')}/{meta.get('name')}"
    try:
        key = base64.b64decode(data.get(KEY_DATA) or "")
    except ValueError:
        key = b""
    if len(key) < IMPORT_KEY_BYTES:
        raise ImportKeyInvalid(f"Secret {where} holds no import key of {IMPORT_KEY_BYTES} bytes under "
                               f"{KEY_DATA!r}; delete the Secret and the operator creates a new one (imported "
                               "keys are then re-hashed as their tokens are reconciled)")
    return key


def read_import_key(core: client.CoreV1Api, namespace: str, name: str) -> bytes | None:
    """The key, None when the Secret does not exist; ImportKeyInvalid when it holds none."""
    found = _read(core, namespace, name)
    return found[0] if found is not None else None


def ensure_import_key(core: client.CoreV1Api, namespace: str, name: str,
                      key: bytes | None = None) -> tuple[bytes, datetime | None]:
    """The key in Secret ``name``, created (with ``key``, or 32 random bytes) when missing, and
    when that Secret was created. Two replicas may race to create it: the loser reads the winner's."""
    found = _read(core, namespace, name)
    if found is not None:
        return found
    key = key or secrets.token_bytes(IMPORT_KEY_BYTES)
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(name=name, namespace=namespace,
                                     labels={MANAGED_BY: MANAGED_BY_VALUE, COMPONENT_LABEL: "import-key"}),
        type="Opaque", data={KEY_DATA: base64.b64encode(key).decode()})
    try:
        made = core.create_namespaced_secret(namespace, body)
    except ApiException as exc:
        if exc.status != 409:
            with translated(f"creating the import key Secret {namespace}/{name}"):
                raise
        found = _read(core, namespace, name)
        if found is None:
            raise ImportKeyInvalid(f"the import key Secret {namespace}/{name} was created and deleted at once; "
                                   "looking again") from None
        return found
    logger.info("created the import key Secret %s/%s", namespace, name)
    return key, made.metadata.creation_timestamp


def _read(core: client.CoreV1Api, namespace: str, name: str) -> tuple[bytes, datetime | None] | None:
    try:
        with translated(f"reading the import key Secret {namespace}/{name}"):
            secret = core.read_namespaced_secret(name, namespace)
    except ApiNotFound:
        return None
    return key_of(secret), created_at(secret)


def created_at(secret: client.V1Secret | Mapping) -> datetime | None:
    """When the Secret was created: a hash made before then was made under another key."""
    if isinstance(secret, client.V1Secret):
        return secret.metadata.creation_timestamp
    stamp = (secret.get("metadata") or {}).get("creationTimestamp")
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None


def follow_import_key(core: client.CoreV1Api, namespace: str, name: str, on_key: Callable[[bytes], None],
                      stop: threading.Event, retry_after: float = 5.0) -> None:
    """Call ``on_key`` with the key whenever Secret ``name`` is written, until ``stop`` is set.
    A watch on that one name: RBAC may grant it with resourceNames. A deleted or invalid
    Secret leaves the last key in use (the operator re-creates a deleted one from memory)."""
    def written(obj: Mapping) -> None:
        try:
            on_key(key_of(obj))
        except ImportKeyInvalid as exc:
            logger.error("%s", exc)

    follow_secret(core, namespace, name, written, stop, "the import key", retry_after)
