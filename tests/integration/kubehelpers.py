"""Small helpers for integration tests: create objects, wait on a watch."""
from __future__ import annotations

import base64
import time
from collections.abc import Callable

from kubernetes import client, watch

GROUP, VERSION = "tokenwarden.io", "v1alpha1"
PLURALS = {
    "ServiceAccount": "serviceaccounts",
    "RoleBinding": "rolebindings",
    "ServiceToken": "servicetokens",
    "IngestionAPIKey": "ingestionapikeys",
    "TokenUsage": "tokenusages",
}
# The audience kube-apiserver sends in the TokenReviews it asks the authenticator for: its
# API audience, which is its --service-account-issuer unless --api-audiences says otherwise
# (the local control plane's issuer). A token that is to authenticate to it carries it.
KUBE_AUDIENCE = "https://kubernetes.default.svc.cluster.local"


def create(custom: client.CustomObjectsApi, kind: str, namespace: str, name: str, spec: dict) -> dict:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}
    return custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], body)


def get(custom: client.CustomObjectsApi, kind: str, namespace: str, name: str) -> dict:
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], name)


def wait_for(custom: client.CustomObjectsApi, kind: str, namespace: str, name: str,
             predicate: Callable[[dict], bool], timeout: int = 60) -> dict:
    """Watch the object until ``predicate(obj)`` holds; raise with its last state if it never does."""
    plural = PLURALS[kind]
    listing = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural,
                                                   field_selector=f"metadata.name={name}")
    last = next(iter(listing["items"]), None)
    if last is not None and predicate(last):
        return last
    stream = watch.Watch()
    for event in stream.stream(custom.list_namespaced_custom_object, GROUP, VERSION, namespace, plural,
                               field_selector=f"metadata.name={name}",
                               resource_version=listing["metadata"]["resourceVersion"],
                               timeout_seconds=timeout):
        last = event["object"]
        if event["type"] != "DELETED" and predicate(last):
            stream.stop()
            return last
    raise AssertionError(f"{kind} {namespace}/{name} never met the condition; last seen: {last!r}")


def eventually(check, timeout: float = 15.0):
    """``check()``'s first true result, or its last one after ``timeout`` seconds: the
    authenticator learns of changes through its watch, so allow it a moment."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def phase_is(*phases: str) -> Callable[[dict], bool]:
    return lambda obj: (obj.get("status") or {}).get("phase") in phases


def ready_reason(obj: dict) -> str | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("reason")
    return None


def wait_for_event(core: client.CoreV1Api, namespace: str, name: str, reason: str, timeout: int = 30,
                   contains: str = ""):
    """The first event about object ``name`` with ``reason`` (and ``contains`` in its message);
    events are posted asynchronously, so this watches for it."""
    selector = f"involvedObject.name={name}"
    listing = core.list_namespaced_event(namespace, field_selector=selector)
    for event in listing.items:
        if event.reason == reason and contains in (event.message or ""):
            return event
    stream = watch.Watch()
    for change in stream.stream(core.list_namespaced_event, namespace, field_selector=selector,
                                resource_version=listing.metadata.resource_version, timeout_seconds=timeout):
        if change["object"].reason == reason and contains in (change["object"].message or ""):
            stream.stop()
            return change["object"]
    raise AssertionError(f"no {reason} event for {namespace}/{name} within {timeout}s")


def credential_forms(token: str) -> list[dict]:
    """Every way a client may present ``token`` to the authenticator."""
    basic = base64.b64encode(f"service_token:{token}".encode()).decode()
    return [{"Authorization": f"Bearer {token}"}, {"Authorization": f"ApiKey {token}"},
            {"Authorization": f"Otel {token}"}, {"X-API-Key": token}, {"Authorization": f"Basic {basic}"}]


def kube_apiserver_user(cluster, token: str):
    """Who kube-apiserver takes ``token`` for, through the authenticator's TokenReview
    webhook (a SelfSubjectReview); None when it refuses the token."""
    configuration = client.Configuration()
    configuration.host = cluster.plane.server
    configuration.ssl_ca_cert = str(cluster.plane.pki.ca.cert)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    api = client.AuthenticationV1Api(client.ApiClient(configuration))
    try:
        return api.create_self_subject_review(client.V1SelfSubjectReview()).status.user_info
    except client.ApiException:
        return None
