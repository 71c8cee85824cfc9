"""Token format, minting and hashing: pure code, no I/O.

A token reads ``<prefix>_<payload><checksum>``:

* ``prefix`` names the kind (``twst`` service tokens, ``twik`` ingestion keys by
  default; configurable);
* ``payload`` is 43 base62 characters carrying 256 bits from :mod:`secrets`;
* ``checksum`` is the CRC32 of ``prefix_payload`` in 6 base62 characters, so a
  secret scanner can tell a real token from noise offline.

Only ``[A-Za-z0-9_]`` appear, so a double click selects a token whole.
"""
from tokenwarden.tokens._format import (
    CHECKSUM_LENGTH,
    IMPORT_KEY_BYTES,
    MAX_TOKEN_LENGTH,
    PAYLOAD_LENGTH,
    TOKEN_REGEX,
    ParsedToken,
    TokenFormatError,
    fits_a_header,
    hash_token,
    hmac_token,
    mint_token,
    new_token_id,
    parse_token,
)

__all__ = [
    "CHECKSUM_LENGTH",
    "IMPORT_KEY_BYTES",
    "MAX_TOKEN_LENGTH",
    "PAYLOAD_LENGTH",
    "TOKEN_REGEX",
    "ParsedToken",
    "TokenFormatError",
    "fits_a_header",
    "hash_token",
    "hmac_token",
    "mint_token",
    "new_token_id",
    "parse_token",
]
