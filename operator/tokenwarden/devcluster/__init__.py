"""A real local Kubernetes control plane, built from Go modules, for the demo and tests."""
from tokenwarden.devcluster._build import Binaries, ensure_binaries, ensure_helm, hack_dir
from tokenwarden.devcluster._cluster import CLUSTER_NAME, ControlPlane, free_port
from tokenwarden.devcluster._errors import ControlPlaneError
from tokenwarden.tls import issue_serving_cert

__all__ = [
    "Binaries",
    "CLUSTER_NAME",
    "ControlPlane",
    "ControlPlaneError",
    "ensure_binaries",
    "ensure_helm",
    "free_port",
    "hack_dir",
    "issue_serving_cert",
]
