"""Find the token in a request, whichever way the client presents it."""
from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping

DEFAULT_SCHEMES = ("bearer", "apikey", "token")


def extract_token(headers: Mapping[str, str], schemes: Iterable[str] = DEFAULT_SCHEMES) -> str | None:
    """The token from ``Authorization: <scheme> <t>``, basic auth (token as password),
    or ``X-API-Key``; None when the request carries none.

    ``schemes`` are compared case-insensitively; configure extra ones (an
    OpenTelemetry collector's ``bearertokenauth`` scheme, say) in settings.
    """
    # A frozenset is taken as already lower-case: the authenticator builds one once, not per request.
    accepted = schemes if isinstance(schemes, frozenset) else {s.lower() for s in schemes}
    authorization = headers.get("Authorization") or headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "basic" and value:
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            # Not base64 (binascii.Error), not UTF-8 (UnicodeDecodeError), or not ASCII at all: aiohttp
            # hands header bytes over as UTF-8, and b64decode refuses "Basic é" with a bare ValueError.
            except ValueError:
                return None
            _, sep, password = decoded.partition(":")
            return password or None if sep else None
        if scheme.lower() in accepted and value:
            return value
    api_key = headers.get("X-API-Key") or headers.get("x-api-key")
    return api_key.strip() or None if api_key else None
