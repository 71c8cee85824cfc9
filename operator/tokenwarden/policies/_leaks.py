"""Leaked tokens: the hashes recorded on a token object (annotation tokenwarden.io/leaked) and
what they call for. Only hashes: the annotation is no secret."""
from __future__ import annotations

import re

LEAKED_ANNOTATION = "tokenwarden.io/leaked"
KEEP = 8  # leaked hashes kept on one object; older ones are no longer any token's
TOKEN_HASH = re.compile(r"(sha256|hmac-sha256):[0-9a-f]{64}")


def leaked_problem(annotation: str | None) -> str | None:
    """Why a tokenwarden.io/leaked value is refused, naming the bound and the fix; None when it
    holds at most KEEP token hashes (what ``tokenwarden token revoke --leaked`` writes)."""
    if annotation is None:
        return None
    hashes = [h.strip() for h in annotation.split(",") if h.strip()]
    bad = [number for number, h in enumerate(hashes, 1) if not TOKEN_HASH.fullmatch(h)]
    if bad:
        # The value is never repeated: what was pasted there may be a token itself.
        return (f"the {LEAKED_ANNOTATION} annotation's entry {bad[0]}, which is no token hash: it lists the "
                "hashes of leaked values (sha256:<64 hex> or hmac-sha256:<64 hex>, comma-separated), as "
                "`tokenwarden token revoke --leaked` writes them")
    if len(hashes) > KEEP:
        return (f"the {LEAKED_ANNOTATION} annotation lists {len(hashes)} hashes, more than the {KEEP} kept: "
                "list only the hashes of values the token may still hold")
    return None


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
