"""Admission answers the same whichever operator replica the webhook Service picks: a standby,
paused by peering since before the objects it counts were made, enforces the quotas as the
active replica does.

Two operators run under peering, each serving the webhook on a port of its own; the API server
is not pointed at either (--no-webhook-managed), so each is sent AdmissionReviews directly, as
the Service would send them to one or the other.
"""
from __future__ import annotations

import http.client
import json
import socket
import ssl
import uuid

import pytest
import requests

from tokenwarden.tls import create_ca, issue_serving_cert

from ..conftest import OperatorProcess
from .kubehelpers import GROUP, VERSION, create, eventually, phase_is, wait_for
from .test_resilience import peering  # noqa: F401  (fixture)

LEADS = "Resuming operations after the pause"  # kopf's line when a replica becomes the active one
ADMIN = {"username": "admin", "groups": ["system:masters", "system:authenticated"]}


@pytest.fixture
def two_webhooks(operator, peering, cluster, tmp_path):  # noqa: F811
    """(active, standby), both serving the webhook over TLS with one CA; the standby started
    before the test makes anything, so its indexes hold none of it."""
    tls = tmp_path / "tls"
    tls.mkdir()
    issue_serving_cert(create_ca(tls, "webhook-ca"), tls, "tls", ["127.0.0.1"])
    operator.stop()
    replicas = []
    for name, priority in (("active", "100"), ("standby", "50")):
        (tmp_path / name).mkdir()
        replicas.append(OperatorProcess(cluster.kubeconfig, tmp_path / name, [
            "--peering", peering, "--priority", priority, "--no-webhook-managed", "--webhook-cert-dir", str(tls)]))
    try:
        for replica in replicas:
            replica.start()
        active, standby = replicas
        assert eventually(lambda: LEADS in active.log(), timeout=60), active.log()[-3000:]
        for replica in replicas:  # kopf starts the webhook server a moment after it is live
            assert eventually(lambda: _listening(replica.webhook_port), timeout=30), replica.log()[-3000:]
        yield active, standby, tls / "ca.crt"
    finally:
        for replica in replicas:
            replica.stop()
        operator.start()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _review(replica: OperatorProcess, ca, kind: str, plural: str, namespace: str, spec: dict) -> dict:
    """The replica's answer to a CREATE of a new object, as the API server would ask it."""
    name = f"new-{uuid.uuid4().hex[:6]}"
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())}, "spec": spec}
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": str(uuid.uuid4()), "kind": {"group": GROUP, "version": VERSION, "kind": kind},
        "resource": {"group": GROUP, "version": VERSION, "resource": plural},
        "name": name, "namespace": namespace, "operation": "CREATE", "userInfo": ADMIN,
        "object": body, "oldObject": None, "dryRun": False}}
    path = {"ServiceToken": "validate-token", "ServiceAccount": "validate-account"}[kind]
    answer = requests.post(f"https://127.0.0.1:{replica.webhook_port}/{path}", json=review, verify=str(ca),
                           timeout=10)
    answer.raise_for_status()
    return answer.json()["response"]


def _token_review(replica, ca, namespace: str) -> dict:
    return _review(replica, ca, "ServiceToken", "servicetokens", namespace, {"serviceAccountName": "agents"})


def _account_review(replica, ca, namespace: str) -> dict:
    return _review(replica, ca, "ServiceAccount", "serviceaccounts", namespace, {})


def test_a_quota_is_enforced_the_same_whichever_replica_answers(two_webhooks, custom, namespace):
    active, standby, ca = two_webhooks
    assert LEADS not in standby.log(), "one replica leads, the other stands by"
    for replica in (active, standby):
        assert _token_review(replica, ca, namespace)["allowed"]
        assert _account_review(replica, ca, namespace)["allowed"]

    # The test settings allow 3 tokens per account and 3 accounts per namespace.
    create(custom, "ServiceAccount", namespace, "agents", {})
    create(custom, "RoleBinding", namespace, "agents", {"serviceAccountName": "agents", "roles": ["reader"]})
    for i in range(3):
        create(custom, "ServiceToken", namespace, f"t{i}", {"serviceAccountName": "agents"})
    for i in range(3):
        wait_for(custom, "ServiceToken", namespace, f"t{i}", phase_is("Active"))
    for name in ("more-1", "more-2"):
        create(custom, "ServiceAccount", namespace, name, {})

    for replica in (active, standby):
        token = eventually(lambda: (lambda r: r if not r["allowed"] else None)(_token_review(replica, ca, namespace)))
        assert token and "already has 3 token(s)" in token["status"]["message"], token
        account = _account_review(replica, ca, namespace)
        assert not account["allowed"] and "quotas.maxAccountsPerNamespace" in account["status"]["message"], account

    # Room again: a token deleted frees its place on both.
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", "t0")
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "serviceaccounts", "more-2")
    for replica in (active, standby):
        assert eventually(lambda: _token_review(replica, ca, namespace)["allowed"]), replica.log()[-2000:]
        assert eventually(lambda: _account_review(replica, ca, namespace)["allowed"])
    assert LEADS not in standby.log(), "the standby answered as a standby throughout"


def test_a_stopping_replica_answers_reviews_on_kept_alive_connections_then_closes_them(operator, cluster, namespace,
                                                                                       tmp_path):
    """SIGTERM (its pod is deleted): the webhook goes on answering for --webhook-drain,
    each answer with ``Connection: close``, so the API server, which keeps its connections to
    the webhook alive, never has one closed under a review it sent (a refused write)."""
    tls = tmp_path / "tls"
    tls.mkdir()
    issue_serving_cert(create_ca(tls, "webhook-ca"), tls, "tls", ["127.0.0.1"])
    (tmp_path / "replica").mkdir()
    replica = OperatorProcess(cluster.kubeconfig, tmp_path / "replica", [
        "--no-webhook-managed", "--webhook-cert-dir", str(tls), "--webhook-drain", "10m"])
    operator.stop()
    try:
        replica.start()
        assert eventually(lambda: _listening(replica.webhook_port), timeout=30), replica.log()[-3000:]
        kept = http.client.HTTPSConnection("127.0.0.1", replica.webhook_port,
                                           context=ssl.create_default_context(cafile=str(tls / "ca.crt")))
        assert _kept_review(kept, namespace) == (True, None)

        replica.process.terminate()
        assert eventually(lambda: "the admission webhook: draining" in replica.log(), timeout=30), replica.log()[-3000:]
        assert _kept_review(kept, namespace) == (True, "close"), "answered, and the connection closed after it"
        assert replica.process.poll() is None, "it stops only when the drain is over"
    finally:
        replica.stop(kill=True)
        operator.start()


def _kept_review(connection: http.client.HTTPSConnection, namespace: str) -> tuple[bool, str | None]:
    """(allowed, the answer's Connection header) for a ServiceToken CREATE sent on ``connection``."""
    name = f"new-{uuid.uuid4().hex[:6]}"
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": str(uuid.uuid4()), "kind": {"group": GROUP, "version": VERSION, "kind": "ServiceToken"},
        "resource": {"group": GROUP, "version": VERSION, "resource": "servicetokens"},
        "name": name, "namespace": namespace, "operation": "CREATE", "userInfo": ADMIN, "oldObject": None,
        "dryRun": False, "object": {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "ServiceToken", "spec": {"roles": ["reader"]},
            "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())}}}}
    connection.request("POST", "/validate-token", body=json.dumps(review), headers={"Content-Type": "application/json"})
    answer = connection.getresponse()
    assert answer.status == 200
    return json.loads(answer.read())["response"]["allowed"], answer.getheader("Connection")
