"""Decisions hold after a failure: a write the API server refuses once is made again until it
holds (revocation, a rotation request, a role refresh), whatever events come or not; writes
never leave an Active token's hash apart from its Secret; ``token.previous`` goes after the overlap.

A refusal is a ValidatingAdmissionPolicy (in the API server, no webhook to run) that denies
the operator's write in the test's namespace for as long as it exists, as an RBAC gap or a
webhook failing for a while would; a dry-run probe shows when it is in force.
"""
from __future__ import annotations

import base64
import hashlib
import threading
import time
import uuid
from contextlib import contextmanager

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from ..conftest import TEST_SETTINGS, OperatorProcess
from .kubehelpers import GROUP, VERSION, create, get, phase_is, wait_for

OVERLAP = 4  # seconds: rotationOverlap of this module's operator


@pytest.fixture(scope="module")
def settling_operator(cluster, operator, tmp_path_factory):
    """An operator whose rotation overlap is short, in place of the session's."""
    operator.stop()
    process = OperatorProcess(cluster.kubeconfig, tmp_path_factory.mktemp("settling-operator"))
    process.config.write_text(TEST_SETTINGS + f"rotationOverlap: {OVERLAP}s\n")
    process.start()
    yield process
    process.stop()
    operator.start()


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _secret(core, namespace, name) -> dict[str, str]:
    data = core.read_namespaced_secret(name, namespace).data or {}
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


@contextmanager
def refused(api_client, namespace: str, group: str, resource: str, operations: list[str], probe,
            reason: str = "Forbidden"):
    """The API server refuses ``operations`` on ``resource`` in ``namespace`` while inside (403,
    or 422 with ``reason`` Invalid); entered once ``probe()`` (a dry run) is refused, so the
    refusal is known to be in force."""
    api = client.AdmissionregistrationV1Api(api_client)
    name = f"refuse-{uuid.uuid4().hex[:8]}"
    message = f"refused by the test ({name})"
    api.create_validating_admission_policy({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {"failurePolicy": "Fail",
                 "matchConstraints": {"resourceRules": [{"apiGroups": [group], "apiVersions": ["*"],
                                                         "operations": operations, "resources": [resource]}]},
                 "validations": [{"expression": "false", "message": message, "reason": reason}]}})
    api.create_validating_admission_policy_binding({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"],
                 "matchResources": {"namespaceSelector": {
                     "matchLabels": {"kubernetes.io/metadata.name": namespace}}}}})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                probe()
            except ApiException as exc:
                if message in (exc.body or ""):
                    break
                raise
            assert time.monotonic() < deadline, "the refusal never came into force"
            time.sleep(0.2)
        yield message
    finally:
        api.delete_validating_admission_policy_binding(name)
        api.delete_validating_admission_policy(name)


def _until_logged(process: OperatorProcess, text: str, timeout: float = 60) -> None:
    """Until the operator's log shows ``text`` (its write was refused)."""
    deadline = time.monotonic() + timeout
    while text not in process.log():
        assert time.monotonic() < deadline, f"the operator never logged {text!r}"
        time.sleep(0.2)


def _until_secret_gone(core, namespace: str, name: str, timeout: int = 60) -> None:
    listing = core.list_namespaced_secret(namespace, field_selector=f"metadata.name={name}")
    if not listing.items:
        return
    for event in watch.Watch().stream(core.list_namespaced_secret, namespace, field_selector=f"metadata.name={name}",
                                      resource_version=listing.metadata.resource_version, timeout_seconds=timeout):
        if event["type"] == "DELETED":
            return
    raise AssertionError(f"Secret {namespace}/{name} was never deleted")


def _status_probe(custom, namespace, name):
    return lambda: custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "servicetokens", name, {"status": {"rotationRequest": "probe"}}, dry_run="All")


def _account_with_token(custom, namespace, token_spec=None):
    create(custom, "ServiceAccount", namespace, "agents", {})
    create(custom, "RoleBinding", namespace, "agents-read", {"serviceAccountName": "agents", "roles": ["reader"]})
    create(custom, "ServiceToken", namespace, "agent", {"serviceAccountName": "agents", **(token_spec or {})})
    return wait_for(custom, "ServiceToken", namespace, "agent", phase_is("Active"))


def test_revocation_holds_after_its_status_write_is_refused(settling_operator, api_client, custom, core, namespace):
    _account_with_token(custom, namespace)
    with refused(api_client, namespace, GROUP, "servicetokens/status", ["UPDATE"],
                 _status_probe(custom, namespace, "agent")) as message:
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "serviceaccounts", "agents")
        _until_logged(settling_operator, message)
    # No event about the account comes after this: the outcome rests on the retry alone.
    revoked = wait_for(custom, "ServiceToken", namespace, "agent", phase_is("Revoked"), timeout=90)
    assert revoked["status"]["conditions"][-1]["reason"] == "AccountDeleted"
    _until_secret_gone(core, namespace, "agent")  # deleted after the status says Revoked


def test_revocation_of_an_account_deleted_while_no_operator_ran(settling_operator, custom, core, namespace):
    _account_with_token(custom, namespace)
    settling_operator.stop()
    try:
        # The binding goes too: no object left to resume speaks of the account, only the
        # resync at start (on kopf's first listing) finds the token without it.
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "rolebindings", "agents-read")
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "serviceaccounts", "agents")
    finally:
        settling_operator.start()
    wait_for(custom, "ServiceToken", namespace, "agent", phase_is("Revoked"), timeout=90)
    # Re-created under the same name, the account does not bring the token back.
    create(custom, "ServiceAccount", namespace, "agents", {})
    create(custom, "RoleBinding", namespace, "agents-read", {"serviceAccountName": "agents", "roles": ["reader"]})
    create(custom, "ServiceToken", namespace, "after", {"serviceAccountName": "agents"})
    wait_for(custom, "ServiceToken", namespace, "after", phase_is("Active"))
    assert get(custom, "ServiceToken", namespace, "agent")["status"]["phase"] == "Revoked"


def test_role_refresh_holds_after_its_status_write_is_refused(settling_operator, api_client, custom, namespace):
    assert _account_with_token(custom, namespace)["status"]["effectiveRoles"] == ["reader"]
    with refused(api_client, namespace, GROUP, "servicetokens/status", ["UPDATE"],
                 _status_probe(custom, namespace, "agent")) as message:
        create(custom, "RoleBinding", namespace, "agents-write", {"serviceAccountName": "agents", "roles": ["writer"]})
        _until_logged(settling_operator, message)
    wait_for(custom, "ServiceToken", namespace, "agent",
             lambda o: o["status"].get("effectiveRoles") == ["reader", "writer"], timeout=90)


def test_disabling_holds_after_its_status_write_is_refused(settling_operator, api_client, custom, namespace):
    _account_with_token(custom, namespace)
    with refused(api_client, namespace, GROUP, "servicetokens/status", ["UPDATE"],
                 _status_probe(custom, namespace, "agent")) as message:
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "serviceaccounts", "agents",
                                              {"spec": {"disabled": True}})
        _until_logged(settling_operator, message)
    wait_for(custom, "ServiceToken", namespace, "agent",
             lambda o: o["status"]["conditions"][-1]["reason"] == "AccountDisabled", timeout=90)


def test_rotation_request_holds_after_its_secret_write_is_refused(settling_operator, api_client, custom, core,
                                                                  namespace):
    create(custom, "ServiceToken", namespace, "rot", {"roles": ["reader"], "ttl": "1h"})
    wait_for(custom, "ServiceToken", namespace, "rot", phase_is("Active"))
    old = _secret(core, namespace, "rot")["token"]
    probe = lambda: core.patch_namespaced_secret(  # noqa: E731
        "rot", namespace, {"metadata": {"annotations": {"probe": "1"}}}, dry_run="All")
    with refused(api_client, namespace, "", "secrets", ["UPDATE"], probe) as message:
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", "rot",
                                              {"metadata": {"annotations": {"tokenwarden.io/rotate": "r1"}}})
        _until_logged(settling_operator, message)
    done = wait_for(custom, "ServiceToken", namespace, "rot",
                    lambda o: o["status"].get("rotationRequest") == "r1", timeout=90)
    secret = _secret(core, namespace, "rot")
    assert secret["token"] != old and done["status"]["tokenHash"] == _sha(secret["token"])
    assert done["status"]["previousTokenHash"] == _sha(old)


def _minted(process: OperatorProcess) -> float:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{process.metrics_port}/metrics", timeout=10) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith('tokenwarden_tokens_minted_total{kind="ServiceToken"}'):
                return float(line.split()[-1])
    return 0.0


def _until_given_up(process: OperatorProcess, key: str, timeout: float = 60) -> None:
    """Until the operator's log says the work under ``key`` is not retried."""
    deadline = time.monotonic() + timeout
    while not any(key in line and "not retried" in line for line in process.log().splitlines()):
        assert time.monotonic() < deadline, f"the operator never gave up {key!r}"
        time.sleep(0.2)


def test_a_rotation_whose_status_write_is_refused_as_invalid_mints_once(settling_operator, api_client, custom,
                                                                         core, namespace):
    """A 422 gets the same answer on every retry: the rotation that met it, after its successor
    was written into the Secret, is not run again in a loop minting one successor after another."""
    create(custom, "ServiceToken", namespace, "once", {"roles": ["reader"], "ttl": "1h"})
    wait_for(custom, "ServiceToken", namespace, "once", phase_is("Active"))
    old, minted = _secret(core, namespace, "once")["token"], _minted(settling_operator)
    with refused(api_client, namespace, GROUP, "servicetokens/status", ["UPDATE"],
                 _status_probe(custom, namespace, "once"), reason="Invalid") as message:
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", "once",
                                              {"metadata": {"annotations": {"tokenwarden.io/rotate": "r1"}}})
        _until_logged(settling_operator, message)
        _until_given_up(settling_operator, f"settle ServiceToken {namespace} once")
        assert _minted(settling_operator) == minted + 1, "the refused rotation minted again on each retry"
    secret = _secret(core, namespace, "once")
    status = get(custom, "ServiceToken", namespace, "once")["status"]
    # The status still names the token it had, kept in the Secret beside the successor.
    assert status["tokenHash"] == _sha(old) == _sha(secret["token.previous"])


class _Observer(threading.Thread):
    """Reads status, Secret, status again: when the status did not change meanwhile, the pair
    is a state clients could observe, and an Active token's hash must be in its Secret."""

    def __init__(self, custom, core, namespace, name) -> None:
        super().__init__(daemon=True)
        self.custom, self.core, self.namespace, self.name = custom, core, namespace, name
        self.stop, self.observed, self.violations = threading.Event(), 0, []

    def run(self) -> None:
        while not self.stop.is_set():
            before = get(self.custom, "ServiceToken", self.namespace, self.name)
            try:
                secret = _secret(self.core, self.namespace, self.name)
            except ApiException:
                continue
            after = get(self.custom, "ServiceToken", self.namespace, self.name)
            if before["metadata"]["resourceVersion"] != after["metadata"]["resourceVersion"]:
                continue
            status = after.get("status") or {}
            if status.get("phase") != "Active":
                continue
            self.observed += 1
            held = {_sha(v) for k, v in secret.items() if k in ("token", "token.previous")}
            if status["tokenHash"] not in held:
                self.violations.append((status.get("tokenId"), status.get("rotationRequest")))


def test_rotation_requests_interleaved_with_spec_updates_keep_the_hash_in_the_secret(
        settling_operator, custom, core, namespace):
    create(custom, "ServiceToken", namespace, "busy", {"roles": ["reader"], "ttl": "1h"})
    wait_for(custom, "ServiceToken", namespace, "busy", phase_is("Active"))
    observer = _Observer(custom, core, namespace, "busy")
    observer.start()
    try:
        for round_ in range(12):
            # The request and an edit of the spec at once: the rotation and the update reconcile
            # both read and write the token's Secret and status.
            edits = [
                lambda r=round_: custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, "servicetokens", "busy",
                    {"metadata": {"annotations": {"tokenwarden.io/rotate": f"r{r}"}}}),
                lambda r=round_: custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, "servicetokens", "busy",
                    {"spec": {"ttl": f"{60 + r}m", "description": f"edit {r}"}}),
            ]
            threads = [threading.Thread(target=edit) for edit in edits]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wait_for(custom, "ServiceToken", namespace, "busy",
                     lambda o, r=round_: o["status"].get("rotationRequest") == f"r{r}", timeout=60)
        final = wait_for(custom, "ServiceToken", namespace, "busy",
                         lambda o: o["status"].get("observedGeneration") == o["metadata"]["generation"])
    finally:
        observer.stop.set()
        observer.join()
    assert observer.observed > 0
    assert observer.violations == []
    assert final["status"]["tokenHash"] == _sha(_secret(core, namespace, "busy")["token"])


def test_the_previous_token_leaves_the_secret_when_the_overlap_ends(settling_operator, custom, core, namespace):
    create(custom, "IngestionAPIKey", namespace, "key", {"ttl": "1h"})
    wait_for(custom, "IngestionAPIKey", namespace, "key", phase_is("Active"))
    old = _secret(core, namespace, "key")["token"]
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "ingestionapikeys", "key",
                                          {"metadata": {"annotations": {"tokenwarden.io/rotate": "now"}}})
    rotated = wait_for(custom, "IngestionAPIKey", namespace, "key",
                       lambda o: o["status"].get("rotationRequest") == "now")
    assert _secret(core, namespace, "key").get("token.previous") == old
    listing = core.list_namespaced_secret(namespace, field_selector="metadata.name=key")
    secret = listing.items[0]
    if secret.data and "token.previous" in secret.data:
        for event in watch.Watch().stream(core.list_namespaced_secret, namespace, field_selector="metadata.name=key",
                                          resource_version=listing.metadata.resource_version,
                                          timeout_seconds=OVERLAP + 60):
            secret = event["object"]
            if "token.previous" not in (secret.data or {}):
                break
    assert "token.previous" not in (secret.data or {}), "token.previous outlived the overlap"
    assert base64.b64decode(secret.data["token"]).decode() != old
    # The Secret is written before the status (a client never sees a hash whose token is not
    # in the Secret), so the status's previous hash goes a moment after token.previous.
    status = wait_for(custom, "IngestionAPIKey", namespace, "key",
                      lambda o: o["status"].get("previousTokenHash") is None)["status"]
    assert status["tokenHash"] == rotated["status"]["tokenHash"]
    assert status.get("previousValidUntil") is None
