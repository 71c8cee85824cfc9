"""Which existing keys may be adopted, and what the refusal says."""
from __future__ import annotations

import pytest

from tokenwarden.policies import (
    IMPORTABLE_LABEL,
    ImportedHash,
    Problem,
    adopted_key,
    duplicate_import_problem,
    fix_label_command,
    import_hash_outdated,
    imported_hash,
    is_importable,
    source_namespace_problem,
    source_not_importable_problem,
)
from tokenwarden.tokens import MAX_TOKEN_LENGTH, hash_token, hmac_token

GRAFANA = "glsa_R3JhZmFuYVNlcnZpY2VBY2NvdW50VG9rZW4_a1b2c3d4"


def adopt(raw, minimum=16, key="token"):
    return adopted_key(raw, secret="legacy", key=key, keys=["apikey", "password"] if raw is None else [key],
                       minimum=minimum)


@pytest.mark.parametrize("raw, expected", [
    (GRAFANA.encode(), GRAFANA),
    (b"0paque-legacy-key-7f3a9c2e41b8d6", "0paque-legacy-key-7f3a9c2e41b8d6"),
    (GRAFANA.encode() + b"\n", GRAFANA),            # kubectl create secret --from-file
    (b"  " + GRAFANA.encode() + b"\r\n", GRAFANA),
    (b"k" * MAX_TOKEN_LENGTH, "k" * MAX_TOKEN_LENGTH),
])
def test_keys_are_adopted_as_stored_less_surrounding_whitespace(raw, expected):
    assert adopt(raw) == expected


@pytest.mark.parametrize("raw, reason, words", [
    (None, "ImportKeyMissing", "(its keys: apikey, password)"),
    (b"", "ImportKeyEmpty", "is empty"),
    (b" \n", "ImportKeyEmpty", "is empty"),
    (b"tiny-key", "ImportTooShort", "8 characters; at least 16"),
    (b"two words-0123456789", "ImportKeyMalformed", "without spaces"),
    (b"line-one-0123456789\nline-two", "ImportKeyMalformed", "printable ASCII"),
    (b"\xff\xfe-not-utf8-0123456789", "ImportKeyMalformed", "printable ASCII"),
    ("caf\u00e9-0123456789abcdef".encode(), "ImportKeyMalformed", "printable ASCII"),
    (b"k" * (MAX_TOKEN_LENGTH + 1), "ImportKeyMalformed", f"longer than {MAX_TOKEN_LENGTH}"),
])
def test_unusable_keys_are_refused_with_the_fix(raw, reason, words):
    problem = adopt(raw)
    assert isinstance(problem, Problem)
    assert (problem.reason, problem.waiting) == (reason, False)
    assert words in problem.message and "'legacy'" in problem.message


def test_minimum_length_is_configurable():
    assert adopt(b"short-but-ok", minimum=8) == "short-but-ok"
    assert adopt(b"short-but-ok", minimum=13).reason == "ImportTooShort"


def test_keys_are_never_read_across_namespaces():
    assert source_namespace_problem("team-a", None) is None
    assert source_namespace_problem("team-a", "team-a") is None
    problem = source_namespace_problem("team-a", "team-b")
    assert problem.reason == "ImportSourceInOtherNamespace"
    assert "'team-b'" in problem.message and "copy the Secret into 'team-a'" in problem.message


def test_duplicate_names_the_first_holder():
    problem = duplicate_import_problem(("team-a", "first"))
    assert problem.reason == "DuplicateImport" and "team-a/first" in problem.message


def test_only_a_secret_labelled_importable_may_be_imported_from():
    assert is_importable({IMPORTABLE_LABEL: "true"})
    for labels in (None, {}, {IMPORTABLE_LABEL: "false"}, {IMPORTABLE_LABEL: "True"}, {"other": "true"}):
        assert not is_importable(labels)


def test_an_unlabelled_source_waits_for_its_label_and_the_refusal_names_the_fix():
    problem = source_not_importable_problem("legacy-keys", "team-a")
    assert (problem.reason, problem.waiting) == ("SourceNotImportable", True)
    assert "'legacy-keys'" in problem.message and "'team-a'" in problem.message
    assert "kubectl label secret legacy-keys -n team-a tokenwarden.io/importable=true" in problem.message
    assert fix_label_command("legacy-keys", "team-a") in problem.message


KEY, OLD_KEY = b"k" * 32, b"o" * 32
VALUE = "0paque-legacy-key-7f3a9c2e41b8d6"


@pytest.mark.parametrize("stored, change", [
    (None, "new"),
    (hmac_token(VALUE, KEY), "same"),
    (hash_token(VALUE), "rehashed"),                 # imported before keys were HMACs: migrated
    (hmac_token(VALUE, OLD_KEY), "rehashed"),        # under the cluster key it replaced
    (hash_token("another-key-0123456789"), "changed"),
    (hmac_token("another-key-0123456789", KEY), "changed"),
    (hmac_token(VALUE, b"x" * 32), "changed"),       # a key nobody holds any more: cannot tell
])
def test_an_imported_key_is_always_kept_as_an_hmac_and_the_change_is_named(stored, change):
    decision = imported_hash(VALUE, stored, KEY, [OLD_KEY])
    assert decision == ImportedHash(hmac_token(VALUE, KEY), change)
    assert decision.token_hash.startswith("hmac-sha256:") and decision.token_hash != hash_token(VALUE)


@pytest.mark.parametrize("stored, change", [
    (hmac_token(VALUE, b"x" * 32), "rehashed"),      # under the key that was lost: cannot tell, keep the date
    (hmac_token("another-key-0123456789", b"x" * 32), "rehashed"),
    (hmac_token(VALUE, KEY), "same"),
    (hash_token("another-key-0123456789"), "changed"),  # a bare sha256 can still be checked
])
def test_after_the_cluster_key_was_created_anew_an_unverifiable_hmac_is_rehashed(stored, change):
    assert imported_hash(VALUE, stored, KEY, key_is_new=True).change == change


@pytest.mark.parametrize("stored, outdated", [
    (None, False),
    ("", False),
    ("sha256:" + "0" * 64, True),
    ("hmac-sha256:" + "0" * 64, False),
])
def test_a_bare_sha256_of_an_import_is_reconciled_even_when_nothing_else_changed(stored, outdated):
    assert import_hash_outdated(stored) is outdated
    # A key created anew by this operator: every stored import is re-hashed at resume.
    assert import_hash_outdated(stored, key_is_new=True) is bool(stored)


def test_the_authenticator_finds_an_imported_key_by_its_hmac_once_it_holds_the_import_key():
    from tokenwarden.authn import Identity, TokenIndex
    from tokenwarden.tokens import mint_token

    index = TokenIndex()
    legacy = Identity("ServiceToken", "team", "legacy", None, ("writer",), "Active", None)
    minted = Identity("ServiceToken", "team", "minted", None, ("reader",), "Active", None)
    token = mint_token("twst")
    index.put(legacy, [(hmac_token(VALUE, KEY), None)])
    index.put(minted, [(hash_token(token), None)])
    assert index.lookup(token) == minted
    assert index.lookup(VALUE) is None  # no key read yet
    index.import_key = KEY
    assert index.lookup(VALUE) == legacy and index.lookup(token) == minted
    index.import_key = OLD_KEY
    assert index.lookup(VALUE) is None
