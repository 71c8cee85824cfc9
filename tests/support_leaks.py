"""Where a token may never be: every log line, event, custom object and metric of a run.

tests/integration/test_zz_leaks.py drives one more scenario through every path and searches;
the session's operator and authenticator fixtures search again when they stop, so each test
process (one per worker when tests run side by side) checks what its own cluster saw, including
tokens whose namespaces are already gone: those are recognised by their shape and checksum."""
from __future__ import annotations

import base64
import json

from kubernetes import client

from tokenwarden.tokens import TOKEN_REGEX, TokenFormatError, parse_token

from .integration.kubehelpers import GROUP, PLURALS, VERSION

TOKEN_KEYS = ("token", "token.previous")


def every_token(core: client.CoreV1Api) -> set[str]:
    """Every token value held in a Secret of the cluster (current and previous)."""
    values = set()
    for secret in core.list_secret_for_all_namespaces().items:
        for key, raw in (secret.data or {}).items():
            if key in TOKEN_KEYS and raw:
                value = base64.b64decode(raw).decode(errors="replace")
                if len(value) >= 16:
                    values.add(value)
    return values


def cluster_haystacks(core: client.CoreV1Api, custom: client.CustomObjectsApi) -> dict[str, str]:
    """The places in the API server a token must never reach: events and the custom objects."""
    haystacks = {"events": json.dumps(core.list_event_for_all_namespaces().to_dict(), default=str)}
    for kind, plural in PLURALS.items():
        objects = custom.list_cluster_custom_object(GROUP, VERSION, plural)["items"]
        haystacks[f"{kind} objects"] = json.dumps(objects)
    return haystacks


def assert_no_token_in(haystacks: dict[str, str], tokens: set[str]) -> None:
    """No token, nor its base64 form, in any haystack; failures show only a token's first characters."""
    for name, text in haystacks.items():
        found = [t[:8] + "…" for t in tokens if t in text]
        assert not found, f"{len(found)} token(s) found in {name}"
        found = [t[:8] + "…" for t in tokens if base64.b64encode(t.encode()).decode() in text]
        assert not found, f"{len(found)} base64 token(s) found in {name}"


def well_formed_tokens(text: str) -> list[str]:
    """Every string in ``text`` with a token's shape and a valid checksum: a minted token,
    even one whose Secret is gone with its namespace."""
    found = []
    for match in TOKEN_REGEX.finditer(text):
        try:
            parse_token(match.group(0))
        except TokenFormatError:
            continue
        found.append(match.group(0))
    return found


def assert_no_token_leaked(haystacks: dict[str, str], core: client.CoreV1Api) -> None:
    """The check a session runs when its operator or authenticator stops: no live token, and
    nothing that reads as a minted one, in any haystack."""
    assert_no_token_in(haystacks, every_token(core))
    for name, text in haystacks.items():
        found = [t[:8] + "…" for t in well_formed_tokens(text)]
        assert not found, f"{len(found)} well-formed token(s) found in {name}"
