"""The authenticator's index after failures, on a control plane of this module's own with no
operator running, so every refusal here is the authenticator's alone: a token deleted while
its watch was away (and the watch then expired) is refused after the new listing; a token or
an account being deleted, and an account re-created under its name, refuse at once; /verify
answers 503 until the index is loaded, and /readyz while a watch stays broken."""
from __future__ import annotations

import os
import re
import signal
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from kubernetes import client

from tokenwarden import devcluster, kube
from tokenwarden.tokens import hash_token, mint_token

from ..conftest import CRDS, AuthenticatorProcess, Cluster
from .kubehelpers import GROUP, VERSION, get
from .test_authenticator import _eventually

HOLD = "tests.tokenwarden.io/hold"  # a finalizer of nobody's: the object stays, being deleted
BROKEN_AFTER = 2  # the authenticator's --watch-broken-after here
# The authenticator learns through its watches, and after an error retries within 10 s.
SETTLE = 45.0


@pytest.fixture(scope="module")
def cluster():
    """A control plane for this module alone: it stops and restarts kube-apiserver and compacts etcd."""
    plane = devcluster.ControlPlane(devcluster.ensure_binaries(), log=lambda *_: None)
    plane.start()
    try:
        kube.install_crds(kube.load_api_client(str(plane.kubeconfig)), CRDS)
        yield Cluster(plane.kubeconfig, plane.version, plane)
    finally:
        plane.stop()


@pytest.fixture(scope="module")
def api_client(cluster) -> client.ApiClient:
    return kube.load_api_client(str(cluster.kubeconfig))


@pytest.fixture(scope="module")
def core(api_client) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="module")
def custom(api_client) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture(scope="module")
def authenticator(cluster, tmp_path_factory):
    process = AuthenticatorProcess(cluster, tmp_path_factory.mktemp("authenticator"),
                                   extra=("--watch-broken-after", str(BROKEN_AFTER)))
    yield process
    process.stop()


def _account(custom, namespace: str, name: str, finalizers: tuple[str, ...] = ()) -> dict:
    return custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "serviceaccounts", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ServiceAccount",
        "metadata": {"name": name, "finalizers": list(finalizers)}, "spec": {}})


def _active_token(custom, namespace: str, name: str, *, account: dict | None = None, bind: bool = True,
                  finalizers: tuple[str, ...] = ()) -> str:
    """A ServiceToken made Active as the operator would (its status written here): its value.
    With ``account``, a token of that account, bound to its uid unless ``bind`` is False."""
    value = mint_token("twst")
    spec = {"serviceAccountName": account["metadata"]["name"]} if account else {"roles": ["reader"]}
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ServiceToken",
        "metadata": {"name": name, "finalizers": list(finalizers)}, "spec": spec})
    status = {"phase": "Active", "tokenId": str(uuid.uuid4().int % 10**15), "effectiveRoles": ["reader"],
              "tokenHash": hash_token(value), "issuedAt": "2026-01-01T00:00:00Z"}
    if account and bind:
        status["accountUID"] = account["metadata"]["uid"]
    custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, "servicetokens", name,
                                                 {"status": status})
    return value


def _release(custom, namespace: str, plural: str, name: str) -> None:
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, {"metadata": {"finalizers": None}})


def _answer(authenticator, value: str) -> tuple[int, str | None]:
    response = authenticator.get("/verify", {"Authorization": f"Bearer {value}"})
    return response.status_code, (response.json().get("reason") if response.status_code != 200 else None)


def _relists(authenticator, kind: str, why: str) -> float:
    text = authenticator.internal("/metrics").text
    found = re.search(rf'^tokenwarden_authenticator_relists_total{{kind="{kind}",reason="{why}"}} ([\d.e+]+)$',
                      text, re.M)
    return float(found.group(1)) if found else 0.0


def _pid_of(plane, component: str) -> int:
    return next(pid for pid in plane.pids if component in Path(f"/proc/{pid}/cmdline").read_bytes().decode())


@contextmanager
def _paused(pid: int):
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_token_deleted_while_the_watch_was_away_is_refused_after_the_listing_again(
        cluster, authenticator, custom, namespace):
    value = _active_token(custom, namespace, "gone")
    kept = _active_token(custom, namespace, "kept")
    assert _eventually(lambda: _answer(authenticator, value)[0] == 200, SETTLE)
    before = _relists(authenticator, "ServiceToken", "expired")
    with _paused(authenticator.process.pid):
        # The watch is cut before the deletion (the DELETED event never reaches it), and the
        # history it would resume from is compacted: it can only get 410 and list again.
        cluster.plane.outage("kube-apiserver", 0)
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", "gone")
        _active_token(custom, namespace, "after")
        cluster.plane.compact_etcd()
    assert _eventually(lambda: _answer(authenticator, value) == (401, "unknown"), SETTLE), \
        authenticator.log()[-3000:]
    assert _relists(authenticator, "ServiceToken", "expired") > before  # the watch got 410
    assert _answer(authenticator, kept) == (200, None)


def test_a_token_being_deleted_is_refused_while_it_still_exists(authenticator, custom, namespace):
    value = _active_token(custom, namespace, "held", finalizers=(HOLD,))
    assert _eventually(lambda: _answer(authenticator, value)[0] == 200, SETTLE)
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", "held")
    try:
        assert _eventually(lambda: _answer(authenticator, value) == (401, "deleted"), SETTLE)
        assert get(custom, "ServiceToken", namespace, "held")["metadata"]["deletionTimestamp"]
    finally:
        _release(custom, namespace, "servicetokens", "held")


def test_an_account_being_deleted_revokes_its_tokens(authenticator, custom, namespace):
    account = _account(custom, namespace, "shipper", finalizers=(HOLD,))
    bound = _active_token(custom, namespace, "shipper-token", account=account)
    unbound = _active_token(custom, namespace, "shipper-older", account=account, bind=False)
    assert _eventually(lambda: _answer(authenticator, bound)[0] == _answer(authenticator, unbound)[0] == 200, SETTLE)
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "serviceaccounts", "shipper")
    try:
        assert _eventually(lambda: _answer(authenticator, bound) == (401, "revoked"), SETTLE)
        assert _answer(authenticator, unbound) == (401, "revoked")
    finally:
        _release(custom, namespace, "serviceaccounts", "shipper")
    assert _eventually(lambda: _answer(authenticator, bound) == (401, "revoked"), SETTLE)


def test_an_account_recreated_under_its_name_does_not_revive_its_tokens(authenticator, custom, namespace):
    first = _account(custom, namespace, "deployer")
    old = _active_token(custom, namespace, "deployer-old", account=first)
    assert _eventually(lambda: _answer(authenticator, old)[0] == 200, SETTLE)
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "serviceaccounts", "deployer")
    assert _eventually(lambda: _answer(authenticator, old) == (401, "revoked"), SETTLE)
    second = _account(custom, namespace, "deployer")
    new = _active_token(custom, namespace, "deployer-new", account=second)
    # Once a token of the new account verifies, the authenticator knows the new account.
    assert _eventually(lambda: _answer(authenticator, new)[0] == 200, SETTLE)
    assert _answer(authenticator, old) == (401, "revoked")


def test_readiness_drops_while_a_watch_stays_broken_and_verification_goes_on(cluster, authenticator, custom,
                                                                            namespace):
    value = _active_token(custom, namespace, "steady")
    assert _eventually(lambda: _answer(authenticator, value)[0] == 200, SETTLE)
    assert authenticator.internal("/readyz").status_code == 200
    outage = threading.Thread(target=cluster.plane.outage, args=("kube-apiserver", 20))
    outage.start()
    try:
        unready = _eventually(lambda: authenticator.internal("/readyz").status_code == 503, timeout=15)
        assert unready, authenticator.log()[-2000:]
        assert "has been broken for" in authenticator.internal("/readyz").text
        assert _answer(authenticator, value) == (200, None)  # from the last index
        # The index's last sync stays at the moment a watch broke (the stale-index alert's metric).
        broken = min(_last_syncs(authenticator).values())
        assert broken < time.time() - BROKEN_AFTER
        assert min(_last_syncs(authenticator).values()) == pytest.approx(broken, abs=0.5)
    finally:
        outage.join()
    assert _eventually(lambda: authenticator.internal("/readyz").status_code == 200, SETTLE)
    assert _answer(authenticator, value) == (200, None)
    assert min(_last_syncs(authenticator).values()) > broken + BROKEN_AFTER  # in sync again: now


def _last_syncs(authenticator) -> dict[str, float]:
    """tokenwarden_authenticator_last_sync_timestamp_seconds by kind."""
    from prometheus_client.parser import text_string_to_metric_families

    return {sample.labels["kind"]: sample.value
            for family in text_string_to_metric_families(authenticator.internal("/metrics").text)
            for sample in family.samples if sample.name == "tokenwarden_authenticator_last_sync_timestamp_seconds"}


class _Starting(AuthenticatorProcess):
    """An authenticator that is not waited for: it starts while the API server is paused."""

    def _wait_ready(self, timeout: float = 60) -> None:
        return None


def test_verification_answers_503_until_the_index_is_loaded(cluster, custom, namespace, tmp_path):
    value = _active_token(custom, namespace, "early")
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": value}}
    with _paused(_pid_of(cluster.plane, "kube-apiserver")):
        starting = _Starting(cluster, tmp_path)
        try:
            assert _eventually(lambda: _up(starting), timeout=60), starting.log()[-2000:]
            answer = starting.get("/verify", {"Authorization": f"Bearer {value}"})
            assert (answer.status_code, answer.json()["reason"]) == (503, "starting")
            reviewed = requests.post(starting.url + "/apis/authentication.k8s.io/v1/tokenreviews", json=review,
                                     timeout=5)
            assert reviewed.status_code == 503
            assert starting.internal("/readyz").status_code == 503
        except BaseException:
            starting.stop()
            raise
    try:
        AuthenticatorProcess._wait_ready(starting)
        assert _answer(starting, value) == (200, None)
    finally:
        starting.stop()


def _up(process: AuthenticatorProcess) -> bool:
    try:
        return process.internal("/healthz", timeout=1).status_code == 200
    except OSError:
        return False
