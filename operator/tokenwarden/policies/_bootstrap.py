"""Is a bootstrap token from Helm values strong enough to accept, and is the bootstrap
ServiceToken found under its name the one the operator created?"""
from __future__ import annotations

import re

from tokenwarden import reasons
from tokenwarden.policies._roles import Problem

MIN_DISTINCT = 10
HOW = ("generate one with: openssl rand -hex 32 (or keep it in a Secret of your own, keys token, roles "
       "and ttl, and name it in authentication.servicetoken.bootstrap.existingSecret)")
# What a value copied from documentation, or not filled in, looks like. A random value has
# none of these: no angle brackets or template braces, and the words are longer than any run
# of letters `openssl rand` is likely to produce.
PLACEHOLDER_MARKS = ("<", ">", "{{", "${")
PLACEHOLDER_WORDS = ("changeme", "change-me", "change_me", "replace", "placeholder", "example", "insert",
                     "your-token", "your_token", "yourtoken")
RUN = 8  # this many equal or consecutive characters in a row (00000000, 12345678, abcdefgh)
_FIELD = "authentication.servicetoken.bootstrap.token"


def bootstrap_token_problem(token: str | None, min_length: int) -> Problem | None:
    if not token or not token.strip():
        return Problem(reasons.BOOTSTRAP_TOKEN_MISSING, f"{_FIELD} is empty; {HOW}")
    placeholder = placeholder_in(token)
    if placeholder:
        return Problem(reasons.BOOTSTRAP_TOKEN_PLACEHOLDER,
                       f"{_FIELD} is a placeholder ({placeholder}), not a token; {HOW}")
    if len(token) < min_length:
        return Problem(reasons.BOOTSTRAP_TOKEN_TOO_SHORT,
                       f"{_FIELD} has {len(token)} characters, at least {min_length} are needed; {HOW}")
    if len(set(token)) < MIN_DISTINCT:
        return Problem(reasons.BOOTSTRAP_TOKEN_WEAK,
                       f"{_FIELD} uses only {len(set(token))} distinct characters and is too easy to guess; {HOW}")
    if any(c.isspace() for c in token):
        return Problem(reasons.BOOTSTRAP_TOKEN_WEAK, f"{_FIELD} contains whitespace; {HOW}")
    return None


def placeholder_in(token: str) -> str | None:
    """What makes ``token`` a placeholder rather than a generated value (never the value
    itself, only the mark or word); None when nothing does."""
    lowered = token.lower()
    for mark in PLACEHOLDER_MARKS:
        if mark in token:
            return f"it contains {mark!r}"
    for word in PLACEHOLDER_WORDS:
        if word in lowered:
            return f"it contains {word!r}"
    if re.search(rf"(.)\1{{{RUN - 1}}}", token):
        return f"it repeats one character {RUN} or more times in a row"
    steps = [ord(b) - ord(a) for a, b in zip(token, token[1:])]
    for step in (1, -1):
        run = 0
        for difference in steps:
            run = run + 1 if difference == step else 0
            if run >= RUN - 1:
                return f"it has a run of {RUN} consecutive characters"
    return None


def bootstrap_token_is_ours(token_uid: str | None, recorded_uid: str | None) -> bool:
    """The ServiceToken under the bootstrap name is the operator's own only when its uid is
    the one the operator recorded on the bootstrap Secret when it created it. A uid is chosen
    by the API server, never by whoever creates an object, and only those who may write the
    bootstrap Secret (who control the bootstrap token anyway) can record one."""
    return bool(token_uid) and token_uid == recorded_uid


def foreign_bootstrap_problem(namespace: str, name: str) -> Problem:
    return Problem(
        reasons.BOOTSTRAP_TOKEN_CONFLICT,
        f"a ServiceToken {namespace}/{name} exists that tokenwarden did not create for the bootstrap "
        "token; it is left as it is (never adopted, changed or deleted) and the bootstrap token is not "
        f"applied: delete it (kubectl delete servicetoken {name} -n {namespace}) if it is not needed, "
        "or give the bootstrap token another name (the chart's authentication.servicetoken.bootstrap.tokenName, "
        "bootstrap.tokenName in the operator's settings)")


def parse_roles(text: str | None) -> list[str]:
    """``a,b`` or a YAML-ish list ``[a, b]`` / ``- a`` lines, as a chart may render them."""
    if not text:
        return []
    cleaned = text.replace("[", " ").replace("]", " ").replace("\n", ",").replace("- ", " ")
    return [r.strip().strip("'\"") for r in cleaned.split(",") if r.strip().strip("'\"")]
