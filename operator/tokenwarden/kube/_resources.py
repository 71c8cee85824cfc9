from __future__ import annotations

from dataclasses import dataclass

GROUP = "tokenwarden.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass(frozen=True)
class Resource:
    kind: str
    plural: str


SERVICE_ACCOUNTS = Resource("ServiceAccount", "serviceaccounts")
ROLE_BINDINGS = Resource("RoleBinding", "rolebindings")
SERVICE_TOKENS = Resource("ServiceToken", "servicetokens")
INGESTION_KEYS = Resource("IngestionAPIKey", "ingestionapikeys")
TOKEN_USAGES = Resource("TokenUsage", "tokenusages")
USAGE_OBJECT = "tokenwarden-usage"  # the one TokenUsage per namespace the authenticator writes

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "tokenwarden"
TOKEN_LABEL = "tokenwarden.io/token"
KIND_LABEL = "tokenwarden.io/kind"
TOKEN_ID_ANNOTATION = "tokenwarden.io/token-id"
ISSUED_AT_ANNOTATION = "tokenwarden.io/issued-at"
# The hash of the token tokenwarden wrote into a minted token's Secret (never the token): what
# proves the value is tokenwarden's own when a crash left no hash in status.
TOKEN_HASH_ANNOTATION = "tokenwarden.io/token-hash"
