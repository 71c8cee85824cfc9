"""The only modules that talk to the Kubernetes API server."""
from tokenwarden.kube._client import load_api_client
from tokenwarden.kube._crds import install_crds

__all__ = ["install_crds", "load_api_client"]
