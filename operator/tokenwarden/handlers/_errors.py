from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import kopf

from tokenwarden.kube import ApiPermanentError, ApiTransientError


@contextmanager
def kube_errors_to_kopf(delay: float = 5.0) -> Iterator[None]:
    """Transient API errors retry the handler; permanent ones stop it with the server's message."""
    try:
        yield
    except ApiTransientError as exc:
        raise kopf.TemporaryError(str(exc), delay=delay) from None
    except ApiPermanentError as exc:
        raise kopf.PermanentError(str(exc)) from None
