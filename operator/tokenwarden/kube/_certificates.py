"""The Secrets, the ConfigMap and the webhook configuration the operator keeps its own
certificates in (handlers/_certificates.py decides what they should hold).

Every write is conditional: a create fails when the object exists, a replace when the object
changed since it was read (its resourceVersion). Several operator replicas may look at the same
time; the one that loses reads again and finds nothing left to do, so they never fight.
"""
from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable, Mapping

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tokenwarden.kube._errors import ApiConflict, ApiNotFound, translated
from tokenwarden.kube._resources import MANAGED_BY, MANAGED_BY_VALUE

COMPONENT_LABEL = "app.kubernetes.io/component"
FIELD_MANAGER = "tokenwarden-operator"
logger = logging.getLogger("tokenwarden.certificates")


class StoredSecret:
    """A Secret's data (decoded), annotations and resourceVersion, as read. Never printed."""

    def __init__(self, secret: client.V1Secret) -> None:
        self.name = secret.metadata.name
        self.data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
        self.annotations = dict(secret.metadata.annotations or {})
        self.resource_version = secret.metadata.resource_version

    def __repr__(self) -> str:
        return f"StoredSecret(name={self.name!r}, keys={sorted(self.data)})"


def read_secret(core: client.CoreV1Api, namespace: str, name: str) -> StoredSecret | None:
    try:
        with translated(f"reading Secret {namespace}/{name}"):
            return StoredSecret(core.read_namespaced_secret(name, namespace))
    except ApiNotFound:
        return None


def _encoded(data: Mapping[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in data.items()}


def write_secret(core: client.CoreV1Api, namespace: str, name: str, data: Mapping[str, bytes], *,
                 annotations: Mapping[str, str], component: str, secret_type: str,
                 found: StoredSecret | None) -> bool:
    """Create the Secret (``found`` None) or replace the one read as ``found``; False when
    another writer came first (read again and decide again)."""
    metadata = _metadata(namespace, name, component, found.resource_version if found else None, annotations)
    return _create_or_replace("Secret", core.create_namespaced_secret, core.replace_namespaced_secret,
                              client.V1Secret(metadata=metadata, type=secret_type, data=_encoded(data)))


def publish_config_map(core: client.CoreV1Api, namespace: str, name: str, data: Mapping[str, str],
                       component: str) -> bool:
    """Make the ConfigMap hold exactly ``data``; True when it was written."""
    try:
        with translated(f"reading ConfigMap {namespace}/{name}"):
            found = core.read_namespaced_config_map(name, namespace)
    except ApiNotFound:
        found = None
    if found is not None and (found.data or {}) == dict(data):
        return False
    metadata = _metadata(namespace, name, component, found.metadata.resource_version if found else None)
    # False: another replica wrote it, and the next look compares again.
    return _create_or_replace("ConfigMap", core.create_namespaced_config_map, core.replace_namespaced_config_map,
                              client.V1ConfigMap(metadata=metadata, data=dict(data)))


def _metadata(namespace: str, name: str, component: str, resource_version: str | None,
              annotations: Mapping[str, str] | None = None) -> client.V1ObjectMeta:
    """An object of the operator's: its labels, and the version a replace is conditional on."""
    return client.V1ObjectMeta(name=name, namespace=namespace, annotations=dict(annotations or {}) or None,
                               labels={MANAGED_BY: MANAGED_BY_VALUE, COMPONENT_LABEL: component},
                               resource_version=resource_version)


def _create_or_replace(kind: str, create: Callable, replace: Callable, body) -> bool:
    """Create ``body`` when it carries no resourceVersion, else replace that version; False when
    another writer came first (the object exists, changed, or went since it was read)."""
    namespace, name = body.metadata.namespace, body.metadata.name
    try:
        with translated(f"writing {kind} {namespace}/{name}"):
            if body.metadata.resource_version is None:
                create(namespace, body)
            else:
                replace(name, namespace, body)
    except (ApiConflict, ApiNotFound):
        return False
    return True


def inject_ca_bundle(admission: client.AdmissionregistrationV1Api, name: str, bundle: bytes) -> bool | None:
    """Set every webhook's clientConfig.caBundle in ValidatingWebhookConfiguration ``name`` to
    ``bundle``, and nothing else; True when it changed, False when it held it already, None when
    the configuration does not exist.

    A JSON patch of those fields only, under the operator's own field manager: whoever applies
    the rest of the configuration (Helm, Argo CD's server-side apply) leaves out caBundle and so
    neither owns it nor removes it. Each replaced entry is tested by name first, so a
    configuration changed in between fails the patch instead of getting a bundle at the wrong place.
    """
    try:
        with translated(f"reading ValidatingWebhookConfiguration {name}"):
            found = admission.read_validating_webhook_configuration(name)
    except ApiNotFound:
        return None
    wanted = base64.b64encode(bundle).decode()
    operations: list[dict] = []
    for index, webhook in enumerate(found.webhooks or []):
        if webhook.client_config.ca_bundle == wanted:
            continue
        operations += [{"op": "test", "path": f"/webhooks/{index}/name", "value": webhook.name},
                       {"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": wanted}]
    if not operations:
        return False
    try:
        with translated(f"injecting the CA bundle into ValidatingWebhookConfiguration {name}"):
            admission.patch_validating_webhook_configuration(name, operations, field_manager=FIELD_MANAGER,
                                                             _content_type="application/json-patch+json")
    except (ApiConflict, ApiNotFound):
        return False  # gone in between; a changed list fails a test (422): the next look reads again
    return True


def follow_secret(core: client.CoreV1Api, namespace: str, name: str, on_change: Callable[[Mapping], None],
                  stop: threading.Event, what: str, retry_after: float = 5.0) -> None:
    """Call ``on_change`` with the raw Secret whenever Secret ``name`` is written, until ``stop``
    is set. A watch on that one name, so RBAC may grant it with resourceNames; a deleted Secret
    is not reported (the last one written stays in use)."""
    version = None
    while not stop.is_set():
        try:
            stream = watch.Watch().stream(core.list_namespaced_secret, namespace,
                                          field_selector=f"metadata.name={name}", resource_version=version,
                                          timeout_seconds=60, _request_timeout=90)
            for event in stream:
                if stop.is_set():
                    return
                obj = event["raw_object"]
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                if event["type"] in ("ADDED", "MODIFIED"):
                    on_change(obj)
                elif event["type"] == "ERROR":
                    version = None  # 410 Gone: start again from the current state
                    break
        except ApiException as exc:
            if exc.status == 410:
                version = None
                continue
            logger.warning("cannot watch %s Secret %s/%s: %s %s; trying again in %ss",
                           what, namespace, name, exc.status, exc.reason, retry_after)
            stop.wait(retry_after)
        except Exception as exc:  # noqa: BLE001  (a dropped connection: watch again)
            logger.warning("watch of %s Secret %s/%s ended: %r; trying again", what, namespace, name, exc)
            stop.wait(retry_after)
