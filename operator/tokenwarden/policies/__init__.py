"""Pure decisions: which roles, may this be created, is it expired. No I/O, clock injected."""
from tokenwarden.policies._bootstrap import bootstrap_token_problem, parse_roles
from tokenwarden.policies._grants import (
    Grant,
    Permission,
    SecretRead,
    binding_grants,
    grant_refused,
    grant_unchecked,
    key_grants,
    needed_permissions,
    token_grants,
)
from tokenwarden.policies._imports import (
    IMPORTABLE_LABEL,
    ImportedHash,
    adopted_key,
    duplicate_import_problem,
    fix_label_command,
    import_hash_outdated,
    imported_hash,
    is_importable,
    source_namespace_problem,
    source_not_importable_problem,
)
from tokenwarden.policies._expiry import deletion_due, parse_time, seconds_until
from tokenwarden.policies._usage import last_use_update
from tokenwarden.policies._rotation import previous_valid_until, renew_at, rotation_requested
from tokenwarden.policies._quota import account_quota_problem, token_quota_problem
from tokenwarden.policies._roles import (
    Binding,
    Problem,
    RolePlan,
    granted_roles,
    plan_roles,
    unknown_roles,
)

__all__ = [
    "last_use_update",
    "Grant",
    "Permission",
    "SecretRead",
    "binding_grants",
    "grant_refused",
    "grant_unchecked",
    "key_grants",
    "needed_permissions",
    "token_grants",
    "IMPORTABLE_LABEL",
    "Binding",
    "ImportedHash",
    "Problem",
    "RolePlan",
    "account_quota_problem",
    "adopted_key",
    "duplicate_import_problem",
    "fix_label_command",
    "import_hash_outdated",
    "imported_hash",
    "is_importable",
    "bootstrap_token_problem",
    "parse_roles",
    "deletion_due",
    "parse_time",
    "previous_valid_until",
    "renew_at",
    "rotation_requested",
    "seconds_until",
    "source_namespace_problem",
    "source_not_importable_problem",
    "granted_roles",
    "plan_roles",
    "token_quota_problem",
    "unknown_roles",
]
