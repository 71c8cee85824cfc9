"""The cluster's import key as the operator holds it: created at start when missing,
followed when its Secret changes, restored from memory when its Secret is deleted."""
from __future__ import annotations

import threading
from datetime import datetime

import kopf

from tokenwarden import reasons
from tokenwarden import policies
from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.kube import ApiPermanentError, ApiTransientError
from tokenwarden.kube._import_key import ImportKeyInvalid, created_at, ensure_import_key, key_of

OLDER_KEPT = 3  # keys replaced while running, so their hashes are re-hashed, not taken for new keys


class ImportKeys:
    """The current key and the few it replaced; handlers read it from threads."""

    def __init__(self) -> None:
        self.key: bytes | None = None
        self.older: list[bytes] = []
        # When the key's Secret was created: an import issued before then was hashed under another
        # key (or as a bare sha256), perhaps one that is lost; it is re-hashed, not taken as new.
        self.created_at: datetime | None = None
        self._lock = threading.Lock()

    def replace(self, key: bytes, created_at: datetime | None) -> bool:
        """Hold ``key`` from now on; True when it differs from the one held."""
        with self._lock:
            self.created_at = created_at or self.created_at
            if key == self.key:
                return False
            if self.key is not None:
                self.older = [self.key, *self.older][:OLDER_KEPT]
            self.key = key
            return True

    def predates(self, issued_at: str | None) -> bool:
        """Whether an import issued at ``issued_at`` was hashed before this key existed."""
        issued = policies.parse_time(issued_at)
        return issued is not None and self.created_at is not None and issued < self.created_at

    def current(self, memo) -> bytes | policies.Problem:
        """The key, read or created now if none is held yet; a waiting Problem if it cannot be."""
        if self.key is not None:
            return self.key
        config = memo.settings.import_key
        if not config.namespace:
            return policies.Problem(
                reasons.IMPORT_KEY_UNAVAILABLE,
                "the operator has no namespace for its import key: set importKey.namespace in its settings "
                "(or run it with POD_NAMESPACE); imported keys are hashed with that key", waiting=True)
        try:
            with kube_errors_to_kopf():
                key, created_at = ensure_import_key(memo.core, config.namespace, config.secret_name)
        except ImportKeyInvalid as exc:
            return policies.Problem(reasons.IMPORT_KEY_UNAVAILABLE, str(exc), waiting=True)
        except (kopf.TemporaryError, kopf.PermanentError) as exc:
            return policies.Problem(
                reasons.IMPORT_KEY_UNAVAILABLE, f"the import key Secret {config.namespace}/{config.secret_name} cannot "
                f"be read or created: {exc}", waiting=True)
        self.replace(key, created_at)
        return key


def follow_key_secret(type, body, memo, logger) -> bool:
    """The key Secret changed or went; True when the key in use changed (imports need re-hashing)."""
    keys: ImportKeys = memo.import_keys
    config = memo.settings.import_key
    if type == "DELETED":
        if keys.key is None:
            return False
        # Every imported hash depends on it: put the same key back rather than a new one.
        try:
            ensure_import_key(memo.core, config.namespace, config.secret_name, keys.key)
            logger.warning(f"the import key Secret {config.namespace}/{config.secret_name} was deleted; "
                           "it was created again with the same key")
        except (ApiPermanentError, ApiTransientError, ImportKeyInvalid) as exc:
            logger.error(f"the import key Secret {config.namespace}/{config.secret_name} was deleted and "
                         f"cannot be created again: {exc}")
        return False
    try:
        key = key_of(body)
    except ImportKeyInvalid as exc:
        logger.error(f"{exc}; the key held until now stays in use")
        return False
    changed = keys.replace(key, created_at(body))
    if changed and keys.older:
        logger.warning(f"the import key in Secret {config.namespace}/{config.secret_name} changed; "
                       "imported keys are re-hashed with the new one")
    return changed and bool(keys.older)


@kopf.on.startup()
def load_import_key(memo, logger, **_) -> None:
    """Create the key before any token is reconciled; a failure here is retried by the
    first import that needs the key."""
    found = memo.import_keys.current(memo)
    if isinstance(found, policies.Problem):
        logger.warning(f"import key: {found.message}")
