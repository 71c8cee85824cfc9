"""The local control plane is a real Kubernetes API server with tokenwarden's CRDs."""
from __future__ import annotations

import base64

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tokenwarden.devcluster import hack_dir
from tokenwarden.devcluster._build import pinned_version

from ..conftest import CRDS


def test_serves_the_pinned_release(api_client, cluster):
    if cluster.plane is None:
        pytest.skip("version pin applies to the local control plane only")
    pinned = pinned_version(hack_dir() / "controlplane" / "go.mod", "k8s.io/kubernetes")
    info = client.VersionApi(api_client).get_code()
    assert info.git_version == pinned


def test_crds_are_established(api_client):
    api = client.ApiextensionsV1Api(api_client)
    expected = {
        yaml.safe_load(path.read_text())["metadata"]["name"] for path in CRDS.glob("*.yaml")
        if yaml.safe_load(path.read_text()).get("kind") == "CustomResourceDefinition"
    }
    assert expected == {
        "serviceaccounts.tokenwarden.io",
        "rolebindings.tokenwarden.io",
        "servicetokens.tokenwarden.io",
        "ingestionapikeys.tokenwarden.io",
        "tokenusages.tokenwarden.io",
    }
    for name in expected:
        crd = api.read_custom_resource_definition(name)
        established = {c.type: c.status for c in crd.status.conditions}
        assert established.get("Established") == "True", name


def test_secret_round_trips(core, namespace):
    data = {"token": base64.b64encode(b"not-a-real-token").decode()}
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="round-trip"), data=data, type="Opaque"))
    assert core.read_namespaced_secret("round-trip", namespace).data == data


def test_server_refuses_an_object_that_breaks_the_schema(custom, namespace):
    body = {
        "apiVersion": "tokenwarden.io/v1alpha1",
        "kind": "ServiceToken",
        "metadata": {"name": "both-expirations"},
        "spec": {"roles": ["reader"], "expiration": "2030-01-01", "ttl": "24h"},
    }
    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object("tokenwarden.io", "v1alpha1", namespace,
                                               "servicetokens", body)
    assert refused.value.status == 422
    assert "at most one of spec.expiration and spec.ttl" in refused.value.body

    body["spec"] = {"roles": ["reader"], "ttl": "one day"}
    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object("tokenwarden.io", "v1alpha1", namespace,
                                               "servicetokens", body)
    assert refused.value.status == 422
    assert "spec.ttl" in refused.value.body


def test_dev_cluster_command_serves_until_sigterm(tmp_path):
    import signal
    import subprocess
    import sys

    from tokenwarden import kube

    kubeconfig = tmp_path / "tw.kubeconfig"
    process = subprocess.Popen([sys.executable, "-m", "tokenwarden", "dev-cluster", "--kubeconfig", str(kubeconfig),
                                "--no-controller-manager"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line == f"kubeconfig: {kubeconfig}\n", process.stderr.read() if process.poll() else line
        api = kube.load_api_client(str(kubeconfig))
        pinned = pinned_version(hack_dir() / "controlplane" / "go.mod", "k8s.io/kubernetes")
        assert client.VersionApi(api).get_code().git_version == pinned
        crds = client.ApiextensionsV1Api(api).list_custom_resource_definition().items
        assert {c.metadata.name for c in crds} >= {"servicetokens.tokenwarden.io"}
    finally:
        for _ in range(3):  # an impatient Ctrl-C, Ctrl-C, kill: still one clean stop
            process.send_signal(signal.SIGINT)
            process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    assert "dev-cluster stopped" in process.stderr.read()
    assert not kubeconfig.exists()
