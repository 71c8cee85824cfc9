"""Leaked tokens: the hashes recorded on a token object (annotation tokenwarden.io/leaked) and
what they call for. Only hashes: the annotation is no secret."""
from __future__ import annotations

LEAKED_ANNOTATION = "tokenwarden.io/leaked"
KEEP = 8  # leaked hashes kept on one object; older ones are no longer any token's


def leaked_hashes(annotation: str | None) -> frozenset[str]:
    """The hashes an annotation value names (comma-separated ``sha256:…`` or ``hmac-sha256:…``)."""
    return frozenset(h.strip() for h in (annotation or "").split(",") if h.strip())


def with_leak(annotation: str | None, token_hash: str) -> str:
    """The annotation value with ``token_hash`` added (last), keeping the newest ``KEEP``."""
    hashes = [h.strip() for h in (annotation or "").split(",") if h.strip() and h.strip() != token_hash]
    return ",".join([*hashes, token_hash][-KEEP:])


def leak_pending(annotation: str | None, token_hash: str | None, previous_hash: str | None) -> bool:
    """Does the token still hold a leaked value (as its token, or its previous one in an
    overlap)? Then it is rotated with no overlap; once rotated, nothing is pending."""
    leaked = leaked_hashes(annotation)
    return bool(leaked) and (token_hash in leaked or previous_hash in leaked)
