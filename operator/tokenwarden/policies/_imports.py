"""May an existing key be adopted? Pure: the caller reads the source Secret.

A key is adopted as its owner stored it, less surrounding whitespace: a Secret made
with ``kubectl create secret --from-file`` usually ends in a newline that no agent
sends. Everything else must travel as a credential unchanged, so it is refused
rather than altered.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tokenwarden import reasons
from tokenwarden.policies._roles import Problem
from tokenwarden.tokens import MAX_TOKEN_LENGTH, fits_a_header, hash_token, hmac_token

FIELD = "spec.import.secretRef"
#: A Secret's opt-in to being imported from: a key is read only from a Secret that carries it.
IMPORTABLE_LABEL = "tokenwarden.io/importable"
HMAC_SCHEME = "hmac-sha256:"


def is_importable(labels: Mapping[str, str] | None) -> bool:
    return (labels or {}).get(IMPORTABLE_LABEL) == "true"


def fix_label_command(secret: str, namespace: str) -> str:
    return f"kubectl label secret {secret} -n {namespace} {IMPORTABLE_LABEL}=true"


def source_not_importable_problem(secret: str, namespace: str) -> Problem:
    """Importing reads a Secret on the requester's behalf, so the Secret must opt in. Waiting:
    the key is imported as soon as the label is there."""
    return Problem(reasons.SOURCE_NOT_IMPORTABLE,
                   f"Secret {secret!r} in namespace {namespace!r} does not carry the label "
                   f'{IMPORTABLE_LABEL}: "true", so no key is imported from it; whoever owns the Secret '
                   f"opts it in with: {fix_label_command(secret, namespace)}", waiting=True)


@dataclass(frozen=True)
class ImportedHash:
    """What to keep for an imported key: ``token_hash``, and how it relates to the stored one:
    ``new`` (none stored), ``same``, ``rehashed`` (the same key, kept before as a bare sha256
    or under an older cluster key: no new issue date), ``changed`` (its owner put a new key in
    the source: issued anew)."""

    token_hash: str
    change: str


def imported_hash(value: str, stored: str | None, key: bytes, older_keys: Iterable[bytes] = (),
                  key_is_new: bool = False) -> ImportedHash:
    """``key_is_new``: the cluster key was created after ``stored`` was made, so an HMAC under
    the key before it (perhaps lost) cannot be checked; it counts as re-hashed (the issue date,
    and so a ttl, is kept)."""
    token_hash = hmac_token(value, key)
    if not stored:
        return ImportedHash(token_hash, "new")
    if stored == token_hash:
        return ImportedHash(token_hash, "same")
    earlier = [hash_token(value), *(hmac_token(value, k) for k in older_keys)]
    if stored in earlier or (key_is_new and stored.startswith(HMAC_SCHEME)):
        return ImportedHash(token_hash, "rehashed")
    return ImportedHash(token_hash, "changed")


def import_hash_outdated(stored: str | None, key_is_new: bool = False) -> bool:
    """An imported key stored as a bare sha256 (from before imports were keyed), or made before
    the current cluster key was (``key_is_new``): reconcile it even when nothing else changed,
    so its hash is the HMAC under the current key."""
    return bool(stored) and (key_is_new or not stored.startswith(HMAC_SCHEME))


def source_namespace_problem(token_namespace: str, source_namespace: str | None) -> Problem | None:
    """Keys are read only from the token's own namespace: whoever may create a token in
    one namespace must not be able to adopt (and so learn the use of) a key in another."""
    if not source_namespace or source_namespace == token_namespace:
        return None
    return Problem(reasons.IMPORT_SOURCE_IN_OTHER_NAMESPACE,
                   f"{FIELD}.namespace is {source_namespace!r}, but a key is imported only from a Secret in "
                   f"the token's own namespace {token_namespace!r}; copy the Secret into {token_namespace!r} "
                   f"and drop {FIELD}.namespace")


def adopted_key(raw: bytes | None, *, secret: str, key: str, keys: Iterable[str], minimum: int,
                key_field: str = f"{FIELD}.key") -> str | Problem:
    """The key to adopt from ``raw`` (the bytes under ``key`` of Secret ``secret``, None when
    that key is absent; ``keys`` are the Secret's keys), or why it cannot be adopted.
    ``key_field`` names where the user chose ``key``."""
    if raw is None:
        present = ", ".join(sorted(keys)) or "none"
        return Problem(reasons.IMPORT_KEY_MISSING,
                       f"Secret {secret!r} has no key {key!r} (its keys: {present}); set {key_field} to the "
                       "key that holds the API key")
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        value = None
    if value == "":
        return Problem(reasons.IMPORT_KEY_EMPTY,
                       f"key {key!r} of Secret {secret!r} is empty; put the existing API key in it")
    if value is None or not fits_a_header(value):
        too_long = value is not None and len(value) > MAX_TOKEN_LENGTH
        what = f"longer than {MAX_TOKEN_LENGTH} characters" if too_long else \
            "not one line of printable ASCII without spaces"
        return Problem(reasons.IMPORT_KEY_MALFORMED,
                       f"key {key!r} of Secret {secret!r} is {what}, so no agent can send it as a credential; "
                       "store the API key itself there")
    if len(value) < minimum:
        return Problem(reasons.IMPORT_TOO_SHORT,
                       f"the key in Secret {secret!r} has {len(value)} characters; at least {minimum} are "
                       "needed (importMinLength): a key that short is too easy to guess, so issue a new "
                       "token instead")
    return value


def duplicate_import_problem(holder: tuple[str, str]) -> Problem:
    """The key is already adopted by ``holder`` (namespace, name)."""
    return Problem(reasons.DUPLICATE_IMPORT,
                   f"the same key already belongs to ServiceToken {holder[0]}/{holder[1]}; a key can "
                   "belong to one token only: delete this token, or delete that one and re-create this one")
