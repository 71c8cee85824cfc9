"""Every reason the operator gives: of a status condition (``Ready``, ``WorkloadIdentitiesBound``),
of an admission refusal, or of an event it posts.

One module, so that the set is known: ``docs/troubleshooting.md`` has an entry for each name
here (``tests/unit/test_reasons.py`` fails on one without), and no module of the operator
writes a reason as a string literal of its own (the same test reads the code). Pure: imports
nothing, so every layer may use it.
"""
from __future__ import annotations

# --- A credential (ServiceToken, IngestionAPIKey) is Ready -------------------------------------
MINTED = "Minted"  # Ready=True: minted (or imported) and verifying; also the event of a mint
ROTATED = "Rotated"  # Ready=True after a rotation; also its event

# --- A credential waits (Pending) for something that may still arrive ---------------------------
ACCOUNT_NOT_FOUND = "AccountNotFound"  # its ServiceAccount does not exist (yet); a binding's too
NO_ROLES_GRANTED = "NoRolesGranted"  # its account has no RoleBinding (yet)
ROLES_NOT_GRANTED = "RolesNotGranted"  # spec.roles asks for roles the account's bindings do not grant
QUOTA_EXCEEDED = "QuotaExceeded"  # maxTokensPerAccount reached; an account beyond maxAccountsPerNamespace
ACCOUNT_QUOTA_EXCEEDED = "AccountQuotaExceeded"  # a token whose account is beyond maxAccountsPerNamespace
IMPORT_SOURCE_NOT_FOUND = "ImportSourceNotFound"  # spec.import.secretRef names no Secret (yet)
SOURCE_NOT_IMPORTABLE = "SourceNotImportable"  # the source Secret lacks tokenwarden.io/importable: "true"
IMPORT_KEY_UNAVAILABLE = "ImportKeyUnavailable"  # the cluster's import key Secret cannot be read or made

# --- A credential is refused (Failed), or an edit is not applied --------------------------------
INVALID_SPEC = "InvalidSpec"  # the spec fails the model's checks (past admission)
EXPIRATION_IN_PAST = "ExpirationInPast"  # spec.expiration or ttl ends before now
NO_ROLES = "NoRoles"  # a standalone token (no serviceAccountName) without spec.roles
UNKNOWN_ROLE = "UnknownRole"  # a role not in the role catalog (tokens, bindings, bootstrap)
SECRET_CONFLICT = "SecretConflict"  # the target Secret exists and tokenwarden does not own it
IMPORT_SOURCE_IN_OTHER_NAMESPACE = "ImportSourceInOtherNamespace"
IMPORT_KEY_MISSING = "ImportKeyMissing"  # the source Secret has no such key
IMPORT_KEY_EMPTY = "ImportKeyEmpty"
IMPORT_KEY_MALFORMED = "ImportKeyMalformed"  # not one line of printable ASCII, or over 4096 characters
IMPORT_TOO_SHORT = "ImportTooShort"  # shorter than importMinLength
DUPLICATE_IMPORT = "DuplicateImport"  # another token holds the same imported key

# --- A credential's token is disabled, revoked, expired ----------------------------------------
ACCOUNT_DISABLED = "AccountDisabled"  # Ready=False: the account's spec.disabled
ACCOUNT_ENABLED = "AccountEnabled"  # the decision that clears AccountDisabled
ACCOUNT_DELETED = "AccountDeleted"  # Revoked: the account was deleted
ACCOUNT_RECREATED = "AccountRecreated"  # Revoked: the account was deleted and created again
EXPIRED = "Expired"  # Expired; also its event

# --- Decisions the operator acts on (events, and the conditions they leave) ---------------------
ROLES_CHANGED = "RolesChanged"  # effective roles recomputed from the account's bindings
ROTATION_REQUESTED = "RotationRequested"  # tokenwarden.io/rotate was given a new value
RENEW_BEFORE_EXPIRY = "RenewBeforeExpiry"  # rotation.renewBefore reached
ROTATION_UNSUPPORTED = "RotationUnsupported"  # rotation asked of an imported key
ROTATION_REQUEST_TOO_LONG = "RotationRequestTooLong"  # a tokenwarden.io/rotate value over 253 characters
LEAKED_ANNOTATION_INVALID = "LeakedAnnotationInvalid"  # tokenwarden.io/leaked holds no token hashes, or too many
TOKEN_LEAKED = "TokenLeaked"  # a held value is in tokenwarden.io/leaked: successor with no overlap
OVERLAP_ENDED = "OverlapEnded"  # the previous token's overlap is over: it leaves the Secret
SECRET_LEFT = "SecretLeft"  # a Revoked or Expired token's Secret is removed
SECRET_RECREATED = "SecretRecreated"  # the Secret was deleted by hand: a new token in a new Secret
SECRET_TAMPERED = "SecretTampered"  # the Secret holds a value tokenwarden did not write: minted anew
IMPORT_REHASH = "ImportRehash"  # the decision to hash a changed source again
IMPORTED = "Imported"  # event: a key imported
IMPORTED_KEY_CHANGED = "ImportedKeyChanged"  # event: the source's value changed and replaced the old one
IMPORT_REHASHED = "ImportRehashed"  # event: re-hashed under a new import key
IMPORT_SOURCE_DELETED = "ImportSourceDeleted"  # event: the source Secret is gone, the key stays valid
RESTART_TARGET_NOT_FOUND = "RestartTargetNotFound"  # event: a rotation.restartTargets entry is missing
RESTART_FAILED = "RestartFailed"  # event: the restart annotation could not be written
LEAK_REPORTED = "LeakReported"  # event: a secret scanner reported the token

# --- Admission refusals --------------------------------------------------------------------------
GRANT_NOT_ALLOWED = "GrantNotAllowed"  # the requester lacks bind on a role or use on a project
GRANT_NOT_CHECKED = "GrantNotChecked"  # the SubjectAccessReview could not be made: refused

# --- ServiceAccount and RoleBinding --------------------------------------------------------------
ACCOUNT_READY = "Ready"  # a ServiceAccount's Ready=True
ACCOUNT_IS_DISABLED = "Disabled"  # a ServiceAccount's Ready=True with spec.disabled
BOUND = "Bound"  # a RoleBinding's Ready=True; WorkloadIdentitiesBound=True
SERVICE_ACCOUNT_NOT_FOUND = "ServiceAccountNotFound"  # WorkloadIdentitiesBound=False
LISTED_BY_ANOTHER_ACCOUNT = "ListedByAnotherAccount"  # WorkloadIdentitiesBound=False

# --- The bootstrap token (events on the bootstrap Secret) ---------------------------------------
BOOTSTRAP_REFUSED = "BootstrapRefused"
BOOTSTRAP_TOKEN_MISSING = "BootstrapTokenMissing"
BOOTSTRAP_TOKEN_PLACEHOLDER = "BootstrapTokenPlaceholder"
BOOTSTRAP_TOKEN_TOO_SHORT = "BootstrapTokenTooShort"
BOOTSTRAP_TOKEN_WEAK = "BootstrapTokenWeak"
BOOTSTRAP_ROLES_MISSING = "BootstrapRolesMissing"
BOOTSTRAP_TTL_INVALID = "BootstrapTTLInvalid"
BOOTSTRAP_TOKEN_CONFLICT = "BootstrapTokenConflict"


def all_reasons() -> dict[str, str]:
    """Every reason above, by constant name."""
    return {name: value for name, value in globals().items() if name.isupper() and isinstance(value, str)}
