"""Resilience: kill -9 during minting, two operators with peering, API server and etcd outages.

Each test is bounded (rounds and timeouts are fixed) and stops by itself.
"""
from __future__ import annotations

import base64
import hashlib
import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from kubernetes import client

from ..conftest import OperatorProcess
from .kubehelpers import GROUP, VERSION, create, phase_is, wait_for
from .test_authenticator import _eventually

ROUNDS, PER_ROUND = 10, 30


def _all_tokens(custom, namespace) -> dict[str, dict]:
    items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens")["items"]
    return {i["metadata"]["name"]: i for i in items}


def _check_invariants(custom, core, namespace, first_hash: dict[str, str]) -> None:
    tokens = _all_tokens(custom, namespace)
    secrets = {s.metadata.name: s for s in core.list_namespaced_secret(
        namespace, label_selector="app.kubernetes.io/managed-by=tokenwarden").items}
    for name, token in tokens.items():
        status = token.get("status") or {}
        if status.get("phase") != "Active":
            continue
        secret = secrets[status["secretName"]]
        value = base64.b64decode(secret.data["token"]).decode()
        assert status["tokenHash"] == "sha256:" + hashlib.sha256(value.encode()).hexdigest(), name
        # A token never changes once it was Active.
        assert first_hash.setdefault(name, status["tokenHash"]) == status["tokenHash"], name
    for name, secret in secrets.items():
        owner = secret.metadata.owner_references[0].name
        assert owner in tokens, f"Secret {name} has no token"


def test_kill_9_during_minting_loses_and_duplicates_nothing(operator, custom, core, namespace):
    rng = random.Random(20261124)
    first_hash: dict[str, str] = {}
    with ThreadPoolExecutor(8) as pool:
        for round_ in range(ROUNDS):
            names = [f"r{round_}-{i}" for i in range(PER_ROUND)]
            futures = [pool.submit(create, custom, "ServiceToken", namespace, n, {"roles": ["reader"]}) for n in names]
            time.sleep(rng.uniform(0.0, 1.5))  # a random moment in the middle of minting
            operator.stop(kill=True)
            for future in futures:
                future.result()
            operator.start()
            _check_invariants(custom, core, namespace, first_hash)
    for name in _all_tokens(custom, namespace):
        wait_for(custom, "ServiceToken", namespace, name, phase_is("Active"), timeout=120)
    _check_invariants(custom, core, namespace, first_hash)
    assert len(first_hash) == ROUNDS * PER_ROUND


@pytest.fixture
def peering(api_client):
    """kopf's peering CRD and one ClusterKopfPeering object, as the chart installs them for replicas > 1."""
    api = client.ApiextensionsV1Api(api_client)
    body = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "clusterkopfpeerings.kopf.dev"},
            "spec": {"scope": "Cluster", "group": "kopf.dev",
                     "names": {"kind": "ClusterKopfPeering", "plural": "clusterkopfpeerings",
                               "singular": "clusterkopfpeering"},
                     "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                         "type": "object", "properties": {"status": {
                             "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]}}
    try:
        api.create_custom_resource_definition(body)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    custom = client.CustomObjectsApi(api_client)
    deadline = time.monotonic() + 30
    while True:
        try:
            custom.create_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", {
                "apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "tw-peering"}})
            break
        except client.ApiException as exc:
            if exc.status == 409:
                break
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)  # the new CRD is not served yet
    return "tw-peering"


@pytest.fixture
def replicas(operator, peering, cluster, tmp_path):
    """Two operators under peering in place of the shared one: (active, standby), not started."""
    operator.stop()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    active = OperatorProcess(cluster.kubeconfig, tmp_path / "a", ["--peering", peering, "--priority", "100"],
                             webhook=False)
    standby = OperatorProcess(cluster.kubeconfig, tmp_path / "b", ["--peering", peering, "--priority", "50"],
                              webhook=False)
    try:
        yield active, standby
    finally:
        active.stop()
        standby.stop()
        operator.start()


def test_two_operators_mint_each_token_once_and_take_over(replicas, custom, core, namespace):
    active, standby = replicas
    active.start()
    standby.start()
    for i in range(20):
        create(custom, "ServiceToken", namespace, f"peer-{i}", {"roles": ["reader"]})
    for i in range(20):
        wait_for(custom, "ServiceToken", namespace, f"peer-{i}", phase_is("Active"))
    expected = sorted(f"peer-{i}" for i in range(20))

    def minted() -> list[str]:
        # Events are posted after the status is written, so they may trail it.
        events = core.list_namespaced_event(namespace).items
        return sorted(e.involved_object.name for e in events
                      if e.reason == "Minted" and e.involved_object.name.startswith("peer-"))

    assert _eventually(lambda: set(minted()) == set(expected), timeout=30), minted()
    assert minted() == expected, "each token minted exactly once"

    active.stop()  # graceful: it leaves the peering, the standby takes over
    create(custom, "ServiceToken", namespace, "after-takeover", {"roles": ["reader"]})
    wait_for(custom, "ServiceToken", namespace, "after-takeover", phase_is("Active"), timeout=90)


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_outage_of_the_control_plane_is_survived(component, cluster, operator, authenticator, custom, core,
                                                 namespace):
    if cluster.plane is None:
        pytest.skip("outages are staged on the local control plane")
    create(custom, "ServiceToken", namespace, "before", {"roles": ["reader"]})
    wait_for(custom, "ServiceToken", namespace, "before", phase_is("Active"))
    known = base64.b64decode(core.read_namespaced_secret("before", namespace).data["token"]).decode()
    assert _eventually(lambda: authenticator.get("/verify", {"X-API-Key": known}).status_code == 200)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: create(custom, "ServiceToken", namespace, f"during-{i}", {"roles": ["reader"]}),
                      range(20)))
    answered = {}

    def probe() -> None:
        try:
            answered["status"] = authenticator.get("/verify", {"X-API-Key": known}, timeout=3).status_code
        except requests.RequestException as exc:
            answered["status"] = repr(exc)

    with ThreadPoolExecutor(1) as pool:
        outage = pool.submit(cluster.plane.outage, component, 10)
        time.sleep(4)  # in the middle of the outage
        probe()
        outage.result()
    assert answered["status"] == 200, "the authenticator answers from its index during the outage"
    for i in range(20):
        wait_for(custom, "ServiceToken", namespace, f"during-{i}", phase_is("Active"), timeout=180)
    create(custom, "ServiceToken", namespace, "after", {"roles": ["reader"]})
    wait_for(custom, "ServiceToken", namespace, "after", phase_is("Active"), timeout=120)
    assert operator.process.poll() is None and authenticator.process.poll() is None
