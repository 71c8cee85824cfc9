"""API errors sorted into the ones worth retrying and the ones that need the user."""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from kubernetes.client.rest import ApiException

_TRANSIENT = {409, 429, 500, 502, 503, 504}


class ApiTransientError(Exception):
    """Conflict, throttling or a server hiccup: retry."""


class ApiConflict(ApiTransientError):
    """409: the object changed since it was read (a write's resourceVersion no longer matches),
    or one of that name exists. Read again and decide again."""


class ApiPermanentError(Exception):
    """The server refused the request itself (422, 403, …): retrying will not help."""


class ApiNotFound(ApiPermanentError):
    """404: the object is not there."""


class ApiForbidden(ApiPermanentError):
    """403: the caller may not do this."""


def api_message(exc: ApiException) -> str:
    try:
        return json.loads(exc.body or "{}").get("message") or str(exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


@contextmanager
def translated(what: str) -> Iterator[None]:
    try:
        yield
    except ApiException as exc:
        message = f"{what}: {exc.status} {api_message(exc)}"
        if exc.status == 409:
            raise ApiConflict(message) from None
        if exc.status in _TRANSIENT or exc.status is None or exc.status == 0:
            raise ApiTransientError(message) from None
        if exc.status == 404:
            raise ApiNotFound(message) from None
        if exc.status == 403:
            raise ApiForbidden(message) from None
        raise ApiPermanentError(message) from None
