"""Is a bootstrap token from Helm values strong enough to accept?"""
from __future__ import annotations

from tokenwarden.policies._roles import Problem

MIN_DISTINCT = 10
HOW = "generate one with: openssl rand -hex 32"


def bootstrap_token_problem(token: str | None, min_length: int) -> Problem | None:
    if not token or not token.strip():
        return Problem("BootstrapTokenMissing",
                       f"authentication.servicetoken.bootstrap.token is empty; {HOW}")
    if len(token) < min_length:
        return Problem("BootstrapTokenTooShort",
                       f"authentication.servicetoken.bootstrap.token has {len(token)} characters, "
                       f"at least {min_length} are needed; {HOW}")
    if len(set(token)) < MIN_DISTINCT:
        return Problem("BootstrapTokenWeak",
                       f"authentication.servicetoken.bootstrap.token uses only {len(set(token))} distinct "
                       f"characters and is too easy to guess; {HOW}")
    if any(c.isspace() for c in token):
        return Problem("BootstrapTokenWeak",
                       "authentication.servicetoken.bootstrap.token contains whitespace; " + HOW)
    return None


def parse_roles(text: str | None) -> list[str]:
    """``a,b`` or a YAML-ish list ``[a, b]`` / ``- a`` lines, as a chart may render them."""
    if not text:
        return []
    cleaned = text.replace("[", " ").replace("]", " ").replace("\n", ",").replace("- ", " ")
    return [r.strip().strip("'\"") for r in cleaned.split(",") if r.strip().strip("'\"")]
