"""The API of ``tokenwarden.io/v1alpha1``: models, and CRDs generated from them."""
from tokenwarden.api._errors import describe_validation_error
from tokenwarden.api.v1alpha1 import (
    Condition,
    IngestionAPIKeySpec,
    IngestionAPIKeyStatus,
    RoleBindingSpec,
    RoleBindingStatus,
    ServiceAccountSpec,
    ServiceAccountStatus,
    ServiceTokenSpec,
    ServiceTokenStatus,
    parse_expiration,
)

__all__ = [
    "Condition",
    "IngestionAPIKeySpec",
    "IngestionAPIKeyStatus",
    "RoleBindingSpec",
    "RoleBindingStatus",
    "ServiceAccountSpec",
    "ServiceAccountStatus",
    "ServiceTokenSpec",
    "ServiceTokenStatus",
    "describe_validation_error",
    "parse_expiration",
]
