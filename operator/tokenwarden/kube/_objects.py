"""Read and patch tokenwarden's own custom objects (status only: spec belongs to the user)."""
from __future__ import annotations

from collections.abc import Iterator

from kubernetes import client

from tokenwarden.kube._errors import ApiNotFound, ApiPermanentError, translated
from tokenwarden.kube._resources import GROUP, VERSION, Resource

LIST_PAGE = 500  # objects per page of a listing: memory stays bounded with any number of tokens


def get_object(custom: client.CustomObjectsApi, resource: Resource, namespace: str, name: str) -> dict | None:
    try:
        with translated(f"reading {resource.kind} {namespace}/{name}"):
            return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, resource.plural, name)
    except ApiNotFound:
        return None


def patch_status(custom: client.CustomObjectsApi, resource: Resource, namespace: str, name: str,
                 status: dict, resource_version: str | None = None) -> bool:
    """Merge ``status`` into the object's status; False when the object is gone. With
    ``resource_version`` (the object's, as read for the decision), the write holds only if
    nothing changed the object since: otherwise ApiConflict, and the caller reads again."""
    body: dict = {"status": status}
    if resource_version:
        body["metadata"] = {"resourceVersion": resource_version}
    try:
        with translated(f"patching status of {resource.kind} {namespace}/{name}"):
            custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, resource.plural, name, body)
    except ApiNotFound:
        return False
    return True


def dry_run_create(custom: client.CustomObjectsApi, resource: Resource, namespace: str, body: dict) -> str | None:
    """Ask the API server to create ``body``, as a dry run (nothing is stored): None when it
    would, else its refusal's message (admission's, the schema's, RBAC's). ApiTransientError
    when it cannot say now."""
    try:
        with translated(f"creating {resource.kind} in {namespace} (dry run)"):
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, resource.plural, body, dry_run="All")
    except ApiPermanentError as exc:
        return str(exc)
    return None


def iter_objects(custom: client.CustomObjectsApi, resource: Resource, namespace: str | None = None,
                 label_selector: str | None = None, page: int = LIST_PAGE) -> Iterator[dict]:
    """Every object of a kind, read in pages: a large listing is never held whole in memory."""
    kwargs = {"label_selector": label_selector} if label_selector else {}
    token = None
    while True:
        if token:
            kwargs["_continue"] = token
        with translated(f"listing {resource.kind}"):
            if namespace:
                result = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, resource.plural,
                                                              limit=page, **kwargs)
            else:
                result = custom.list_cluster_custom_object(GROUP, VERSION, resource.plural, limit=page, **kwargs)
        token = (result.get("metadata") or {}).get("continue")
        yield from result.get("items", [])
        if not token:
            return


def list_objects(custom: client.CustomObjectsApi, resource: Resource, namespace: str | None = None,
                 label_selector: str | None = None) -> list[dict]:
    return list(iter_objects(custom, resource, namespace, label_selector))


def listing_scopes(namespaces: list[str]) -> list[str | None]:
    """Where to list what a process serves: each named namespace, or the whole cluster
    (None) when it serves all of them or names them by glob. Listing more than is served
    is harmless: handlers only ask about the namespaces they serve."""
    if not namespaces or any(ch in pattern for pattern in namespaces for ch in "*?[!,"):
        return [None]
    return list(namespaces)


def delete_object(custom: client.CustomObjectsApi, resource: Resource, namespace: str, name: str,
                  uid: str | None = None) -> None:
    """Delete the object; with ``uid``, only that very object, never a namesake made since."""
    body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid)) if uid else None
    try:
        with translated(f"deleting {resource.kind} {namespace}/{name}"):
            custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, resource.plural, name, body=body)
    except ApiNotFound:
        pass


def create_object(custom: client.CustomObjectsApi, resource: Resource, namespace: str, body: dict) -> dict:
    with translated(f"creating {resource.kind} {namespace}/{body['metadata']['name']}"):
        return custom.create_namespaced_custom_object(GROUP, VERSION, namespace, resource.plural, body)


def set_spec_fields(custom: client.CustomObjectsApi, resource: Resource, namespace: str, name: str,
                    fields: dict) -> None:
    """Merge ``fields`` into the spec (None removes a field) of an object the operator itself
    owns, never a user's."""
    with translated(f"updating {resource.kind} {namespace}/{name}"):
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, resource.plural, name, {"spec": fields})
