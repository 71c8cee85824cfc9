"""A cheap look at a JWT: its shape, the claims that refuse it before any TokenReview, and
the parts its signature covers. Nothing here trusts the token: its signature is checked
against the cluster's issuer keys (_issuer.py), then kube-apiserver reviews it."""
from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

# header.payload.signature, each base64url without padding; a tokenwarden token has no dot.
JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
SERVICE_ACCOUNT_USER = re.compile(r"system:serviceaccount:([a-z0-9][-a-z0-9.]*):([a-z0-9][-a-z0-9.]*)")
# An exp past this (the year 10000) is no projected token's: refused as malformed. A 400-digit
# integer would overflow float(), and NaN or Infinity (which Python's json reads) compare as nothing.
LATEST_EXPIRY = 253_402_300_800


@dataclass(frozen=True)
class Claims:
    audiences: tuple[str, ...]
    expires: float | None         # exp, seconds since the epoch
    subject: str = ""             # sub: trusted only once the signature is checked
    algorithm: str = ""           # the header's alg
    key_id: str = ""              # the header's kid
    signed: bytes = field(default=b"", repr=False)     # header.payload, what the signature covers
    signature: bytes = field(default=b"", repr=False)


# The base64url alphabet, as bytes for bytes.translate.
_BASE64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def looks_like_jwt(token: str) -> bool:
    """Whether ``JWT_SHAPE`` matches the whole token, checked with bytes.translate: this runs on
    every request that carries a workload token, and the regular expression over its kilobyte
    took about twice as long."""
    if not token.isascii():
        return False
    raw = token.encode()
    return (raw.translate(None, _BASE64URL) == b".." and not raw.startswith(b".") and not raw.endswith(b".")
            and b".." not in raw)


def _decode(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def _segment(text: str) -> dict | None:
    raw = _decode(text)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    # RecursionError: JSON nested about a thousand deep, which the parser refuses by raising it.
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def expiry(exp: object) -> float | None:
    """``exp`` as seconds since the epoch; None unless it is a JSON number from 0 to
    LATEST_EXPIRY (no bool, no NaN, no Infinity, no integer too large for a float)."""
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return None
    if isinstance(exp, int) and not 0 <= exp <= LATEST_EXPIRY:  # before float(): it may overflow
        return None
    value = float(exp)
    return value if math.isfinite(value) and 0 <= value <= LATEST_EXPIRY else None


def peek(token: str) -> Claims | None:
    """The audiences and expiry the token claims, its subject and the parts its signature
    covers, unverified; None when it is no JWT."""
    if not looks_like_jwt(token):
        return None
    header_text, payload_text, signature_text = token.split(".")
    header, payload = _segment(header_text), _segment(payload_text)
    signature = _decode(signature_text)
    if header is None or payload is None or signature is None or "alg" not in header:
        return None
    aud = payload.get("aud")
    audiences = (aud,) if isinstance(aud, str) else tuple(a for a in aud if isinstance(a, str)) \
        if isinstance(aud, list) else ()
    return Claims(audiences, expiry(payload.get("exp")), _text(payload.get("sub")), _text(header.get("alg")),
                  _text(header.get("kid")), f"{header_text}.{payload_text}".encode(), signature)


def refusal(claims: Claims | None, audiences: Sequence[str], now: float) -> str | None:
    """Why the token cannot pass a TokenReview for ``audiences``, judged on its own claims:
    malformed (no JWT, or no plausible expiry: a workload token is a projected, expiring one), audience
    (none of ours), expired. None: worth checking its signature."""
    if claims is None or claims.expires is None:
        return "malformed"
    if not set(claims.audiences) & set(audiences):
        return "audience"
    if claims.expires <= now:
        return "expired"
    return None


def service_account_of(username: str) -> tuple[str, str] | None:
    """(namespace, name) of ``system:serviceaccount:<namespace>:<name>``; None for any other user."""
    found = SERVICE_ACCOUNT_USER.fullmatch(username)
    return (found.group(1), found.group(2)) if found else None
