"""List and watch one custom kind, for a process that keeps its own copy of it (a reflector).

A listing is read in pages; a watch starts from the listing's resourceVersion, with
bookmarks, and is opened before its events are read, so the caller knows the moment the
API server took it. A resourceVersion the server no longer has is ``Expired`` (410):
the caller lists again.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

from tokenwarden.kube._errors import api_message, translated
from tokenwarden.kube._objects import LIST_PAGE
from tokenwarden.kube._resources import GROUP, VERSION, Resource


class Expired(Exception):
    """410 Gone: the resourceVersion (or a listing's continue token) is too old; list again."""


def list_page(custom: client.CustomObjectsApi, resource: Resource, namespace: str | None,
              continue_token: str | None, page: int = LIST_PAGE,
              request_timeout: float = 60) -> tuple[list[dict], str, str | None]:
    """One page of a listing: (items, the listing's resourceVersion, the next page's token)."""
    kwargs: dict = {"limit": page, "_request_timeout": request_timeout}
    if continue_token:
        kwargs["_continue"] = continue_token
    result = _list(custom, resource, namespace, f"listing {resource.kind}", **kwargs)
    metadata = result.get("metadata") or {}
    return result.get("items") or [], metadata.get("resourceVersion") or "", metadata.get("continue") or None


@contextmanager
def open_watch(custom: client.CustomObjectsApi, resource: Resource, namespace: str | None, resource_version: str,
               timeout: int = 60, read_timeout: float = 90) -> Iterator[Iterator[dict]]:
    """A watch from ``resource_version``, open once this yields; the events as dicts
    (``type``, ``object``). The server ends it after ``timeout`` seconds; no byte for
    ``read_timeout`` seconds (an API server that hangs) is an error."""
    kwargs = {"watch": True, "resource_version": resource_version, "allow_watch_bookmarks": True,
              "timeout_seconds": timeout, "_preload_content": False, "_request_timeout": (10, read_timeout)}
    response = _list(custom, resource, namespace, f"watching {resource.kind} from {resource_version}", **kwargs)
    try:
        yield (json.loads(line) for line in iter_resp_lines(response) if line)
    finally:
        response.close()
        response.release_conn()


def _list(custom: client.CustomObjectsApi, resource: Resource, namespace: str | None, what: str, **kwargs):
    """The list call, in one namespace or the whole cluster; 410 is Expired."""
    with translated(what):
        try:
            if namespace:
                return custom.list_namespaced_custom_object(GROUP, VERSION, namespace, resource.plural, **kwargs)
            return custom.list_cluster_custom_object(GROUP, VERSION, resource.plural, **kwargs)
        except ApiException as exc:
            if exc.status == 410:
                raise Expired(f"{what}: {api_message(exc)}") from None
            raise
