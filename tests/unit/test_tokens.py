from __future__ import annotations

import hashlib
import hmac

import pytest

from tokenwarden.tokens import (
    CHECKSUM_LENGTH,
    PAYLOAD_LENGTH,
    TOKEN_REGEX,
    TokenFormatError,
    hash_token,
    hmac_token,
    mint_token,
    new_token_id,
    parse_token,
)


def test_minted_token_has_the_published_form():
    token = mint_token("twst")
    assert token.startswith("twst_")
    assert len(token) == len("twst_") + PAYLOAD_LENGTH + CHECKSUM_LENGTH
    assert TOKEN_REGEX.fullmatch(token)
    assert set(token) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
    parsed = parse_token(token, prefixes=("twst", "twik"))
    assert parsed.prefix == "twst"


def test_tokens_are_distinct_and_carry_256_bits():
    tokens = {mint_token("twst") for _ in range(2000)}
    assert len(tokens) == 2000
    # 43 base62 digits can hold 256 bits; the leading digit must vary across tokens
    # (a payload shorter than 256 bits would pin it to a few values).
    assert len({t[5] for t in tokens}) > 5


@pytest.mark.parametrize("position", [5, 20, 47, -1])
def test_a_single_changed_character_fails_the_checksum(position):
    token = mint_token("twik")
    chars = list(token)
    chars[position] = "A" if chars[position] != "A" else "B"
    with pytest.raises(TokenFormatError, match="checksum"):
        parse_token("".join(chars))


@pytest.mark.parametrize("text, problem", [
    ("", "not a tokenwarden token"),
    ("twst_short", "not a tokenwarden token"),
    ("twst-" + "a" * 49, "not a tokenwarden token"),
    ("Bearer twst_" + "a" * 49, "not a tokenwarden token"),
])
def test_malformed_strings_are_named(text, problem):
    with pytest.raises(TokenFormatError, match=problem):
        parse_token(text)


def test_unknown_prefix_is_refused_by_name():
    token = mint_token("other")
    with pytest.raises(TokenFormatError, match="unknown token prefix 'other'"):
        parse_token(token, prefixes=("twst",))


def test_hash_is_sha256_of_the_whole_token():
    token = mint_token("twst")
    assert hash_token(token) == "sha256:" + hashlib.sha256(token.encode()).hexdigest()
    assert token not in hash_token(token)


def test_an_imported_key_is_kept_as_an_hmac_under_the_cluster_key():
    key, other = b"k" * 32, b"o" * 32
    value = "a-person-chose-this-0123"
    kept = hmac_token(value, key)
    assert kept == "hmac-sha256:" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
    # Without the cluster key the stored hash says nothing: not the bare sha256, and
    # another key gives another hash.
    assert kept.partition(":")[2] != hash_token(value).partition(":")[2]
    assert hmac_token(value, other) != kept
    assert hmac_token(value, key) == kept and value not in kept


def test_regex_finds_tokens_in_text_for_secret_scanners():
    token = mint_token("twst")
    found = [m.group(0) for m in TOKEN_REGEX.finditer(f"export API_KEY={token}\n")]
    assert found == [token]


def test_token_ids_are_15_digits():
    ids = {new_token_id() for _ in range(100)}
    assert all(len(i) == 15 and i.isdigit() for i in ids)
    assert len(ids) == 100
