from __future__ import annotations

import logging
import os

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

# Loggers that would print request or response bodies (a Secret's data among them)
# at DEBUG. They stay at INFO whatever the process's own level.
QUIET_LOGGERS = ("kubernetes.client.rest", "urllib3", "aiohttp.client")


def quiet_body_loggers() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)


def load_api_client(kubeconfig: str | None = None, context: str | None = None,
                    pool_size: int | None = None) -> client.ApiClient:
    """An API client from ``kubeconfig`` (or $KUBECONFIG, ~/.kube/config), else in-cluster.

    ``pool_size`` keeps that many connections open: as many as threads that share it,
    or each extra request pays a new TLS handshake.
    """
    path = kubeconfig or os.environ.get("KUBECONFIG")
    configuration = client.Configuration()
    try:
        if path or os.path.exists(os.path.expanduser("~/.kube/config")) or context:
            config.load_kube_config(config_file=path, context=context,
                                    client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
        if pool_size:
            configuration.connection_pool_maxsize = pool_size
        return client.ApiClient(configuration)
    except (ConfigException, OSError) as exc:
        raise ConfigException(
            f"cannot load Kubernetes credentials ({exc}): pass --kubeconfig or set KUBECONFIG"
        ) from exc
