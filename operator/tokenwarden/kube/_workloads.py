"""Workloads that mount token Secrets: rolled the way `kubectl rollout restart` does."""
from __future__ import annotations

from kubernetes import client

from tokenwarden.kube._errors import translated

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def rollout_restart(api_client: client.ApiClient, namespace: str, kind: str, name: str, when: str) -> None:
    """Set the pod template's restartedAt annotation (raises ApiNotFound if absent)."""
    apps = client.AppsV1Api(api_client)
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: when}}}}}
    method = {
        "Deployment": apps.patch_namespaced_deployment,
        "DaemonSet": apps.patch_namespaced_daemon_set,
        "StatefulSet": apps.patch_namespaced_stateful_set,
    }[kind]
    with translated(f"restarting {kind} {namespace}/{name}"):
        method(name, namespace, patch)
