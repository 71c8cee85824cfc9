"""kopf's peering object, which several operator replicas share."""
from __future__ import annotations

from kubernetes import client
from kubernetes.client.rest import ApiException

from tokenwarden.kube._errors import translated


def ensure_cluster_peering(api_client: client.ApiClient, name: str) -> bool:
    """Create the ClusterKopfPeering ``name`` unless it exists; False when its CRD is missing.

    The operator creates it, not the chart: Helm cannot install a custom object in the same
    release as its CRD (it maps every kind before it creates anything), and without the
    object every replica would stay paused."""
    custom = client.CustomObjectsApi(api_client)
    body = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}
    try:
        custom.create_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", body)
    except ApiException as exc:
        if exc.status == 409:
            return True
        if exc.status == 404:
            return False
        with translated(f"creating ClusterKopfPeering {name}"):
            raise
    return True
