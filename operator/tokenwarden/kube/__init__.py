"""The only modules that talk to the Kubernetes API server."""
from tokenwarden.kube import _access as access
from tokenwarden.kube import _events as events
from tokenwarden.kube import _secrets as secrets
from tokenwarden.kube._client import load_api_client, quiet_body_loggers
from tokenwarden.kube._crds import install_crds
from tokenwarden.kube import _objects as objects
from tokenwarden.kube import _usage as usage
from tokenwarden.kube._errors import (
    ApiConflict,
    ApiForbidden,
    ApiNotFound,
    ApiPermanentError,
    ApiTransientError,
    translated,
)
from tokenwarden.kube._peering import ensure_cluster_peering

__all__ = [
    "access",
    "ApiConflict",
    "ApiForbidden",
    "ApiNotFound",
    "ApiPermanentError",
    "ApiTransientError",
    "ensure_cluster_peering",
    "events",
    "install_crds",
    "load_api_client",
    "objects",
    "quiet_body_loggers",
    "secrets",
    "translated",
    "usage",
]
