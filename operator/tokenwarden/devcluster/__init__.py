"""A real local Kubernetes control plane, built from Go modules, for the demo and tests."""
from tokenwarden.devcluster._build import (
    Binaries,
    NodeBinaries,
    ensure_actionlint,
    ensure_binaries,
    ensure_dashboard_check,
    ensure_helm,
    ensure_node_binaries,
    ensure_promtool,
    hack_dir,
)
from tokenwarden.devcluster._cluster import CLUSTER_NAME, ControlPlane, free_port
from tokenwarden.devcluster._dns import corefile, ensure_coredns
from tokenwarden.devcluster._errors import ControlPlaneError
from tokenwarden.devcluster._images import (
    BASE_IMAGE,
    DEFAULT_TAG,
    PAUSE_IMAGE,
    Image,
    build_image,
    ensure_base_image,
    ensure_pause_image,
    image_archive,
)
from tokenwarden.devcluster._node import (
    NODE_IP,
    NODE_NAME,
    NodeCluster,
    NodeImages,
    ensure_node_packages,
    node_images,
    node_problems,
    start_node_cluster,
)
from tokenwarden.tls import issue_serving_cert

__all__ = [
    "BASE_IMAGE",
    "DEFAULT_TAG",
    "Image",
    "PAUSE_IMAGE",
    "build_image",
    "ensure_base_image",
    "ensure_pause_image",
    "image_archive",
    "Binaries",
    "CLUSTER_NAME",
    "ControlPlane",
    "ControlPlaneError",
    "corefile",
    "NODE_IP",
    "NODE_NAME",
    "NodeBinaries",
    "NodeCluster",
    "NodeImages",
    "ensure_node_binaries",
    "ensure_node_packages",
    "node_images",
    "node_problems",
    "start_node_cluster",
    "ensure_actionlint",
    "ensure_binaries",
    "ensure_coredns",
    "ensure_dashboard_check",
    "ensure_helm",
    "ensure_promtool",
    "free_port",
    "hack_dir",
    "issue_serving_cert",
]
