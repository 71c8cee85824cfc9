from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from dataclasses import dataclass

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}

MAX_TOKEN_LENGTH = 4096  # far above any key we mint or import; longer strings are refused before hashing
PAYLOAD_BITS = 256
PAYLOAD_LENGTH = 43  # ceil(256 / log2(62))
CHECKSUM_LENGTH = 6  # ceil(32 / log2(62))

#: Any tokenwarden token, whatever its prefix; published for secret scanners.
TOKEN_REGEX = re.compile(
    rf"\b(?P<prefix>[a-z][a-z0-9]{{1,9}})_(?P<payload>[0-9A-Za-z]{{{PAYLOAD_LENGTH}}})"
    rf"(?P<checksum>[0-9A-Za-z]{{{CHECKSUM_LENGTH}}})\b"
)


class TokenFormatError(ValueError):
    """A string that is not a well-formed tokenwarden token; the message says why."""


@dataclass(frozen=True)
class ParsedToken:
    prefix: str
    payload: str
    checksum: str


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    if number:
        raise OverflowError("number does not fit the width")
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def mint_token(prefix: str) -> str:
    """A new token with ``prefix``: 256 random bits and a CRC32 checksum."""
    payload = _base62(secrets.randbits(PAYLOAD_BITS), PAYLOAD_LENGTH)
    body = f"{prefix}_{payload}"
    return body + _checksum(body)


def parse_token(token: str, prefixes: tuple[str, ...] | None = None) -> ParsedToken:
    """Split ``token`` into its parts; raise TokenFormatError naming what is wrong.

    With ``prefixes``, the prefix must be one of them.
    """
    match = TOKEN_REGEX.fullmatch(token)
    if match is None:
        raise TokenFormatError(
            "not a tokenwarden token: expected <prefix>_<43 base62 characters><6 base62 checksum>"
        )
    parsed = ParsedToken(match["prefix"], match["payload"], match["checksum"])
    if prefixes is not None and parsed.prefix not in prefixes:
        raise TokenFormatError(
            f"unknown token prefix {parsed.prefix!r}: expected one of {', '.join(prefixes)}"
        )
    if _checksum(f"{parsed.prefix}_{parsed.payload}") != parsed.checksum:
        raise TokenFormatError("checksum mismatch: the token was mistyped or truncated")
    return parsed


def hash_token(token: str) -> str:
    """``sha256:<hex>`` of the whole token: what status, logs and indexes hold."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


IMPORT_KEY_BYTES = 32  # the cluster key imported keys are hashed with


def hmac_token(token: str, key: bytes) -> str:
    """``hmac-sha256:<hex>`` of the whole token under ``key``: the hash kept for an imported
    key, which a person may have chosen, so that the stored hash is no offline guessing
    oracle for anyone without the cluster key."""
    return "hmac-sha256:" + hmac.new(key, token.encode("utf-8"), hashlib.sha256).hexdigest()


def fits_a_header(value: str) -> bool:
    """Whether ``value`` can travel as a credential in every form the authenticator reads
    (``Bearer <t>``, ``X-API-Key: <t>``, Basic): printable ASCII without spaces, at most
    MAX_TOKEN_LENGTH characters."""
    return (0 < len(value) <= MAX_TOKEN_LENGTH and value.isascii() and value.isprintable()
            and " " not in value)


def new_token_id() -> str:
    """A short public id (15 decimal digits, as the seed CLI prints) for list and delete."""
    return str(10**14 + secrets.randbelow(9 * 10**14))
