from __future__ import annotations

import os

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException


def load_api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An API client from ``kubeconfig`` (or $KUBECONFIG, ~/.kube/config), else in-cluster."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    try:
        if path or os.path.exists(os.path.expanduser("~/.kube/config")) or context:
            configuration = client.Configuration()
            config.load_kube_config(config_file=path, context=context,
                                    client_configuration=configuration)
            return client.ApiClient(configuration)
        config.load_incluster_config()
        return client.ApiClient()
    except (ConfigException, OSError) as exc:
        raise ConfigException(
            f"cannot load Kubernetes credentials ({exc}): pass --kubeconfig or set KUBECONFIG"
        ) from exc
