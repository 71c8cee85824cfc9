"""Exact indexes: what is deleted while the operator's watch is away is forgotten when kopf
lists again (after a real 410 Gone), and a standby replica acts on nothing until it leads.

A watch is made to expire as it does in production: the operator is stopped (SIGSTOP), the
API server restarts (its watch cache then begins after the operator's last resourceVersion),
objects are deleted, and the operator continues (SIGCONT): its watches resume from a
resourceVersion the server no longer has, get 410 Gone and list again.
"""
from __future__ import annotations

import os
import re
import signal
import time
import uuid
from contextlib import contextmanager

import pytest
from kubernetes import client

from tokenwarden.handlers._unsettled import UNSETTLED_AFTER, UNSETTLED_SWEEP

from ..conftest import OperatorProcess
from .kubehelpers import GROUP, PLURALS, VERSION, create, phase_is, wait_for
from .test_authenticator import _eventually
from .test_resilience import peering, replicas  # noqa: F401  (fixtures)

KINDS = ("serviceaccounts", "rolebindings", "servicetokens", "ingestionapikeys")


def _restarts(operator: OperatorProcess, plural: str) -> int:
    """kopf's own (debug) line when a watch got 410 Gone and lists again."""
    return len(re.findall(rf"Restarting the watch-stream for {plural}\.", operator.log()))


def _indexed(operator: OperatorProcess, plural: str) -> int:
    """How many events of a kind kopf's handlers have taken (each passes the operator's gate first)."""
    return operator.log().count(f"Handler 'listed-{plural}' succeeded.")


def _delete_now(custom, kind: str, namespace: str, name: str) -> None:
    """Delete, and let it go at once whatever finalizer it carries: gone while no watch saw it."""
    plural = PLURALS[kind]
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
    try:
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name,
                                              {"metadata": {"finalizers": None}})
    except client.ApiException as exc:
        if exc.status != 404:
            raise


@contextmanager
def watch_expired(cluster, operator: OperatorProcess, core):
    """Inside: the operator is stopped and its watches are broken. On leaving it continues, and
    each of its watches gets 410 Gone and lists again (waited for)."""
    before = {plural: _restarts(operator, plural) for plural in KINDS}
    os.kill(operator.process.pid, signal.SIGSTOP)
    try:
        # Any write moves etcd past the operator's last resourceVersion; the restarted API
        # server's watch cache starts there, so resuming from before it is 410 Gone.
        core.create_namespaced_config_map("default", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=f"relist-{uuid.uuid4().hex[:8]}")))
        cluster.plane.outage("kube-apiserver", 0)
        yield
    finally:
        os.kill(operator.process.pid, signal.SIGCONT)
    assert _eventually(lambda: all(_restarts(operator, p) > before[p] for p in KINDS), timeout=60), \
        "every watch of the operator expired and listed again"


@pytest.fixture
def plane(cluster):
    if cluster.plane is None:
        pytest.skip("the API server is restarted on the local control plane only")
    return cluster


def test_what_was_deleted_while_the_watch_was_away_grants_and_counts_nothing(plane, operator, custom, core,
                                                                            namespace):
    create(custom, "ServiceAccount", namespace, "agents", {})
    create(custom, "RoleBinding", namespace, "agents-reader", {"serviceAccountName": "agents", "roles": ["reader"]})
    create(custom, "RoleBinding", namespace, "agents-writer", {"serviceAccountName": "agents", "roles": ["writer"]})
    for i in range(3):  # the account's quota (3 tokens) is full
        create(custom, "ServiceToken", namespace, f"old-{i}", {"serviceAccountName": "agents"})
    for i in range(3):
        wait_for(custom, "ServiceToken", namespace, f"old-{i}",
                 lambda t: phase_is("Active")(t) and t["status"].get("effectiveRoles") == ["reader", "writer"])

    # A first expiry with nothing deleted, then quiet: kopf's last events of each kind are a
    # listing's, as on a cluster where nothing changes between two expired watches.
    before = {plural: _indexed(operator, plural) for plural in KINDS}
    with watch_expired(plane, operator, core):
        pass
    listed = {"serviceaccounts": 1, "rolebindings": 2, "servicetokens": 3}  # at least this test's objects
    assert _eventually(lambda: all(_indexed(operator, p) >= before[p] + n for p, n in listed.items()), timeout=60)
    with watch_expired(plane, operator, core):
        _delete_now(custom, "RoleBinding", namespace, "agents-writer")
        _delete_now(custom, "ServiceToken", namespace, "old-0")
        _delete_now(custom, "ServiceToken", namespace, "old-1")

    create(custom, "ServiceToken", namespace, "new-0", {"serviceAccountName": "agents"})
    create(custom, "ServiceToken", namespace, "new-1", {"serviceAccountName": "agents"})
    for name in ("new-0", "new-1"):
        token = wait_for(custom, "ServiceToken", namespace, name, phase_is("Active"), timeout=60)
        assert token["status"]["effectiveRoles"] == ["reader"], \
            f"{name} must not get the roles of the RoleBinding deleted while the watch was away"


def _looked_at(operator: OperatorProcess, namespace: str, name: str) -> bool:
    """The unsettled sweep's lines about one token (it reads it, and reconciles it or says why not)."""
    text = operator.log()
    return f"{namespace}/{name} sat unsettled" in text or f"{namespace}/{name} is still unsettled" in text


def test_a_standby_sweeps_nothing_and_a_new_leader_starts_from_a_fresh_listing(replicas, custom, namespace):  # noqa: F811
    # Waits for an account that never comes: unsettled, what the sweep looks at.
    create(custom, "ServiceToken", namespace, "waiting", {"serviceAccountName": "nobody"})
    create(custom, "ServiceAccount", namespace, "agents", {})
    create(custom, "RoleBinding", namespace, "agents-reader", {"serviceAccountName": "agents", "roles": ["reader"]})
    create(custom, "RoleBinding", namespace, "agents-writer", {"serviceAccountName": "agents", "roles": ["writer"]})
    active, standby = replicas
    active.start()
    standby.start()
    assert _eventually(lambda: "Resuming operations after the pause" in active.log(), timeout=60)
    assert "Resuming operations after the pause" not in standby.log(), "one replica leads"
    # The leader keeps retrying the token, so its events keep it off the leader's sweep; the
    # standby sees no events, so its indexes show it unsettled and untouched since its
    # start: a sweep that acted while standing by would look at it within this window.
    deadline = time.monotonic() + UNSETTLED_AFTER + 2 * UNSETTLED_SWEEP
    while time.monotonic() < deadline:
        assert not _looked_at(standby, namespace, "waiting"), "a standby's sweep read or reconciled a token"
        time.sleep(1)

    # Deleted while it stands by: a new leader must not act on them.
    _delete_now(custom, "RoleBinding", namespace, "agents-writer")
    _delete_now(custom, "ServiceToken", namespace, "waiting")
    active.stop()  # graceful: it leaves the peering, the standby takes over
    assert _eventually(lambda: "Resuming operations after the pause" in standby.log(), timeout=90)
    create(custom, "ServiceToken", namespace, "after-takeover", {"serviceAccountName": "agents"})
    token = wait_for(custom, "ServiceToken", namespace, "after-takeover", phase_is("Active"), timeout=90)
    assert token["status"]["effectiveRoles"] == ["reader"]
    assert _eventually(lambda: "indexes listed again after a pause" in standby.log(), timeout=2 * UNSETTLED_SWEEP)
    assert not _looked_at(standby, namespace, "waiting"), "the new leader acted on a token deleted meanwhile"
