"""The cluster's service-account issuer as kube-apiserver publishes it (service-account issuer
discovery): its name, and the public keys that sign service-account tokens. Reading them needs
the nonResourceURLs that the ClusterRole ``system:service-account-issuer-discovery`` grants."""
from __future__ import annotations

import json

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

DISCOVERY_PATH = "/.well-known/openid-configuration"
# Served by kube-apiserver itself, whatever jwks_uri the discovery document names (that may be
# an address outside the cluster, --service-account-jwks-uri).
JWKS_PATH = "/openid/v1/jwks"


class IssuerUnavailable(Exception):
    """The issuer's discovery document or keys could not be read; the message says why."""


def _get(path: str, call) -> dict:
    """What ``call`` (one of the client's issuer-discovery methods) answers, parsed as a JSON
    object. Read raw: the client turns the answer it types as "str" into a Python repr."""
    try:
        text = call(_request_timeout=10, _preload_content=False).data
    except ApiException as exc:
        hint = (": bind the ClusterRole system:service-account-issuer-discovery to the authenticator"
                if exc.status in (401, 403) else "")
        raise IssuerUnavailable(f"GET {path}: kube-apiserver answered {exc.status} {exc.reason}{hint}") from None
    except (HTTPError, OSError) as exc:
        raise IssuerUnavailable(f"GET {path}: kube-apiserver could not be reached: {type(exc).__name__}") from None
    try:
        data = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise IssuerUnavailable(f"GET {path}: expected a JSON object (is --service-account-issuer a URL?)")
    return data


def read_issuer(api_client: client.ApiClient) -> tuple[str, list[dict]]:
    """The issuer's name and its JSON Web Keys, as kube-apiserver publishes them."""
    issuer = _get(DISCOVERY_PATH, client.WellKnownApi(api_client).get_service_account_issuer_open_id_configuration)
    keys = _get(JWKS_PATH, client.OpenidApi(api_client).get_service_account_issuer_open_id_keyset).get("keys")
    if not isinstance(keys, list):
        raise IssuerUnavailable(f"GET {JWKS_PATH}: no keys in the answer")
    return (issuer if isinstance(issuer, str) else ""), [k for k in keys if isinstance(k, dict)]
