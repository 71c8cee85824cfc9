"""List and watch one kind, for a process that keeps its own copy of it (a reflector): a
custom kind of ours, or a core kind narrowed by the API server (:class:`Selection`).

A listing is read in pages; a watch starts from the listing's resourceVersion, with
bookmarks, and is opened before its events are read, so the caller knows the moment the
API server took it. A resourceVersion the server no longer has is ``Expired`` (410):
the caller lists again.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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
    return _page(functools.partial(_list, custom, resource, namespace), f"listing {resource.kind}",
                 continue_token, page, request_timeout)


@contextmanager
def open_watch(custom: client.CustomObjectsApi, resource: Resource, namespace: str | None, resource_version: str,
               timeout: int = 60, read_timeout: float = 90) -> Iterator[Iterator[dict]]:
    """A watch from ``resource_version``, open once this yields; the events as dicts
    (``type``, ``object``). The server ends it after ``timeout`` seconds; no byte for
    ``read_timeout`` seconds (an API server that hangs) is an error."""
    with _stream(functools.partial(_list, custom, resource, namespace),
                 f"watching {resource.kind} from {resource_version}", resource_version, timeout,
                 read_timeout) as events:
        yield events


@dataclass(frozen=True)
class Selection:
    """Objects of a core kind that the API server selects for a reflector: by label, by field
    (``metadata.name=…``), and with ``metadata_only`` their metadata alone (no Secret's data,
    no ServiceAccount's list of Secrets reaches the process)."""

    plural: str  # "secrets", "serviceaccounts"
    namespace: str | None  # None: every namespace
    label_selector: str | None = None
    field_selector: str | None = None
    metadata_only: bool = False

    @property
    def what(self) -> str:
        narrowed = ", ".join(filter(None, (self.label_selector, self.field_selector)))
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.plural}{where}" + (f" ({narrowed})" if narrowed else "")


_METADATA_ONLY = "application/json;as=PartialObjectMetadata{};g=meta.k8s.io;v=v1"


def list_selected_page(core: client.CoreV1Api, selection: Selection, continue_token: str | None,
                       page: int = LIST_PAGE, request_timeout: float = 60) -> tuple[list[dict], str, str | None]:
    """One page of a listing of ``selection``, as :func:`list_page`."""
    return _page(functools.partial(_list_selected, core, selection), f"listing {selection.what}",
                 continue_token, page, request_timeout)


@contextmanager
def open_selected_watch(core: client.CoreV1Api, selection: Selection, resource_version: str,
                        timeout: int = 60, read_timeout: float = 90) -> Iterator[Iterator[dict]]:
    """A watch of ``selection`` from ``resource_version``, as :func:`open_watch`."""
    with _stream(functools.partial(_list_selected, core, selection),
                 f"watching {selection.what} from {resource_version}", resource_version, timeout,
                 read_timeout) as events:
        yield events


def _page(call: Callable[..., dict], what: str, continue_token: str | None, page: int,
          request_timeout: float) -> tuple[list[dict], str, str | None]:
    kwargs: dict = {"limit": page, "_request_timeout": request_timeout}
    if continue_token:
        kwargs["_continue"] = continue_token
    result = call(what, **kwargs)
    metadata = result.get("metadata") or {}
    return result.get("items") or [], metadata.get("resourceVersion") or "", metadata.get("continue") or None


@contextmanager
def _stream(call: Callable, what: str, resource_version: str, timeout: int,
            read_timeout: float) -> Iterator[Iterator[dict]]:
    kwargs = {"watch": True, "resource_version": resource_version, "allow_watch_bookmarks": True,
              "timeout_seconds": timeout, "_preload_content": False, "_request_timeout": (10, read_timeout)}
    response = call(what, **kwargs)
    try:
        yield (json.loads(line) for line in iter_resp_lines(response) if line)
    finally:
        response.close()
        response.release_conn()


def _list_selected(core: client.CoreV1Api, selection: Selection, what: str, **kwargs):
    """The list (or watch) call of a core kind, narrowed as ``selection`` says; a listing
    parsed as plain JSON, not as the client's models."""
    watching = kwargs.get("watch", False)
    kwargs["_preload_content"] = False
    if selection.metadata_only:
        kwargs["_headers"] = {"Accept": _METADATA_ONLY.format("" if watching else "List")}
    for name in ("label_selector", "field_selector"):
        if getattr(selection, name):
            kwargs[name] = getattr(selection, name)
    with translated(what):
        try:
            if selection.namespace:
                method = getattr(core, f"list_namespaced_{_singular(selection.plural)}")
                response = method(selection.namespace, **kwargs)
            else:
                method = getattr(core, f"list_{_singular(selection.plural)}_for_all_namespaces")
                response = method(**kwargs)
        except ApiException as exc:
            if exc.status == 410:
                raise Expired(f"{what}: {api_message(exc)}") from None
            raise
    return response if watching else json.loads(response.data)


def _singular(plural: str) -> str:
    return {"secrets": "secret", "serviceaccounts": "service_account"}[plural]


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
