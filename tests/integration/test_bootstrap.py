"""The bootstrap token from Helm values: created once, never extended, replaced, revoked;
a placeholder is refused, and a ServiceToken of that name that the operator did not create
is left alone."""
from __future__ import annotations

import base64
import hashlib
import secrets
import time

import kopf
import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tokenwarden.handlers._bootstrap import bootstrap_listed, bootstrap_secret, settle_bootstrap

from ..conftest import REPO, OperatorProcess
from .inprocess import LOG, no_events, operator_memo, operator_stopped  # noqa: F401  (fixtures)
from .kubehelpers import GROUP, VERSION, create, get, phase_is, wait_for, wait_for_event

NAMESPACE = "tokenwarden-bootstrap"
SECRET = "tokenwarden-bootstrap"
TOKEN = "tokenwarden-bootstrap"
VALUE = secrets.token_hex(32)  # as the docs say to make one: openssl rand -hex 32
CREATED_UID = "tokenwarden.io/bootstrap-token-uid"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def bootstrap_namespace(core):
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    yield NAMESPACE
    core.delete_namespace(NAMESPACE)
    for event in watch.Watch().stream(core.list_namespace, field_selector=f"metadata.name={NAMESPACE}",
                                      timeout_seconds=60):
        if event["type"] == "DELETED":
            break


def _write_values(core, token=VALUE, roles="power-user", ttl="24h", annotations=None):
    """The Secret as helm install writes it, or as helm upgrade patches it."""
    data = {"token": _b64(token), "roles": _b64(roles)}
    if ttl:
        data["ttl"] = _b64(ttl)
    body = client.V1Secret(metadata=client.V1ObjectMeta(name=SECRET, annotations=annotations), data=data)
    try:
        core.patch_namespaced_secret(SECRET, NAMESPACE, body)
    except ApiException as exc:
        if exc.status != 404:
            raise
        core.create_namespaced_secret(NAMESPACE, body)


def _gone(custom, timeout=30) -> bool:
    listing = custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "servicetokens",
                                                   field_selector=f"metadata.name={TOKEN}")
    if not listing["items"]:
        return True
    for event in watch.Watch().stream(custom.list_namespaced_custom_object, GROUP, VERSION, NAMESPACE,
                                      "servicetokens", field_selector=f"metadata.name={TOKEN}",
                                      resource_version=listing["metadata"]["resourceVersion"],
                                      timeout_seconds=timeout):
        if event["type"] == "DELETED":
            return True
    return False


def test_bootstrap_token_lifecycle(operator, custom, core, bootstrap_namespace):
    _write_values(core)
    token = wait_for(custom, "ServiceToken", NAMESPACE, TOKEN, phase_is("Active"))
    status = token["status"]
    assert status["effectiveRoles"] == ["power-user"]
    # The Secret records which ServiceToken the operator created for it.
    recorded = core.read_namespaced_secret(SECRET, NAMESPACE).metadata.annotations[CREATED_UID]
    assert recorded == token["metadata"]["uid"]
    assert status["expiresAt"] > status["issuedAt"]
    assert VALUE not in str(token) and VALUE not in operator.log()

    # A restart (an upgrade with the same values) never extends the ttl.
    operator.restart()
    _write_values(core)  # helm upgrade rewrites the same Secret
    again = get(custom, "ServiceToken", NAMESPACE, TOKEN)["status"]
    assert (again["issuedAt"], again["expiresAt"], again["tokenHash"]) == (
        status["issuedAt"], status["expiresAt"], status["tokenHash"])

    # A new token value replaces the old one.
    _write_values(core, token=secrets.token_hex(32))
    wait_for(custom, "ServiceToken", NAMESPACE, TOKEN, lambda o: o["status"].get("tokenHash") != status["tokenHash"])

    # Values without a bootstrap section (no Secret) revoke it.
    core.delete_namespaced_secret(SECRET, NAMESPACE)
    assert _gone(custom)


def test_weak_bootstrap_token_is_refused_with_a_clear_message(operator, custom, core, bootstrap_namespace):
    _write_values(core, token="short")
    event = wait_for_event(core, NAMESPACE, SECRET, "BootstrapRefused", contains="at least 32")
    assert "openssl rand" in event.message
    _write_values(core, token="ab" * 20)
    wait_for_event(core, NAMESPACE, SECRET, "BootstrapRefused", contains="distinct characters")
    assert _gone(custom, timeout=3)
    assert operator.process.poll() is None  # refused, and the operator keeps running


def test_the_examples_placeholder_is_refused_and_says_how_to_make_a_token(operator, custom, core,
                                                                          bootstrap_namespace):
    """examples/authentication.yaml as it stands: helm install refuses it (test_chart), and an
    existingSecret holding such a value is refused by the operator, which mints nothing."""
    example = yaml.safe_load((REPO / "examples" / "authentication.yaml").read_text())
    placeholder = example["authentication"]["servicetoken"]["bootstrap"]["token"]
    _write_values(core, token=placeholder)
    event = wait_for_event(core, NAMESPACE, SECRET, "BootstrapRefused", contains="placeholder")
    assert "openssl rand -hex 32" in event.message and "existingSecret" in event.message
    for obvious, why in (("x-changeme-changeme-changeme-changeme", "it contains 'changeme'"),
                         ("REPLACE_WITH_A_REAL_TOKEN_0123456789", "it contains 'replace'"),
                         ("0123456789abcdef0123456789abcdefXYZ", "a run of 8 consecutive characters"),
                         ("x9" + "7" * 40, "repeats one character")):
        _write_values(core, token=obvious)
        wait_for_event(core, NAMESPACE, SECRET, "BootstrapRefused", contains=why)
    assert _gone(custom, timeout=3)
    assert "bootstrap token refused" in operator.log()


def test_a_fresh_operator_with_nothing_else_to_handle_refuses_a_weak_bootstrap_token(operator, cluster, core,
                                                                                     bootstrap_namespace, tmp_path):
    """Started with no token, key or binding where it serves: no kopf handler has run when its own
    watch of the bootstrap Secret sees the weak value, and the refusal is posted all the same."""
    operator.stop()
    fresh = OperatorProcess(cluster.kubeconfig, tmp_path, namespaces=[NAMESPACE])
    try:
        fresh.start()
        _write_values(core, token="short")
        event = wait_for_event(core, NAMESPACE, SECRET, "BootstrapRefused", contains="at least 32")
        assert event.source.component == "tokenwarden" and "short" not in event.message
    finally:
        fresh.stop()
        operator.start()


def _log_count(operator, text: str, at_least: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while operator.log().count(text) < at_least:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_a_bootstrap_named_token_the_operator_did_not_create_is_left_alone(operator, custom, core,
                                                                            bootstrap_namespace):
    """Made first, with the bootstrap label even: never adopted, changed or deleted."""
    foreign = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ServiceToken",
               "metadata": {"name": TOKEN, "labels": {"tokenwarden.io/bootstrap": "true"}},
               "spec": {"roles": ["reader"], "description": "someone else's"}}
    made = custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "servicetokens", foreign)
    wait_for(custom, "ServiceToken", NAMESPACE, TOKEN, phase_is("Active"))
    seen = operator.log().count("bootstrap token not applied")

    _write_values(core)
    event = wait_for_event(core, NAMESPACE, SECRET, "BootstrapTokenConflict")
    assert f"ServiceToken {NAMESPACE}/{TOKEN}" in event.message
    assert "kubectl delete servicetoken" in event.message and "bootstrap.tokenName" in event.message
    assert _log_count(operator, "bootstrap token not applied", seen + 1)
    after = get(custom, "ServiceToken", NAMESPACE, TOKEN)
    assert after["metadata"]["uid"] == made["metadata"]["uid"]
    assert after["spec"] == made["spec"] and after["status"]["effectiveRoles"] == ["reader"]
    assert CREATED_UID not in (core.read_namespaced_secret(SECRET, NAMESPACE).metadata.annotations or {})

    # Recording someone else's token needs write access to the bootstrap Secret: who has it
    # holds the bootstrap token anyway. A claim that does not match is not enough.
    _write_values(core, annotations={CREATED_UID: "claim:0123"})
    assert _log_count(operator, "bootstrap token not applied", seen + 2)

    # Values removed: the Secret goes, the foreign token stays.
    core.delete_namespaced_secret(SECRET, NAMESPACE)
    assert _log_count(operator, "bootstrap token not applied", seen + 3)
    after = get(custom, "ServiceToken", NAMESPACE, TOKEN)
    assert after["metadata"]["uid"] == made["metadata"]["uid"] and after["spec"] == made["spec"]
    assert "deletionTimestamp" not in after["metadata"]
    assert VALUE not in operator.log()


def test_a_token_created_just_before_a_crash_is_recognised_by_its_claim(operator, custom, core,
                                                                        bootstrap_namespace):
    """The operator crashed between creating its token and recording the token's uid: the
    claim it wrote to the Secret beforehand, carried by the token, still proves it."""
    operator.stop(kill=True)
    try:
        # As the operator makes it: importing the bootstrap Secret's token (a token of its own
        # would be minted into a Secret of the same name, once the test has deleted that one).
        made = create(custom, "ServiceToken", NAMESPACE, TOKEN, {
            "roles": ["reader"], "import": {"secretRef": {"name": SECRET, "key": "token"}}})
        custom.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "servicetokens", TOKEN, {
            "metadata": {"annotations": {"tokenwarden.io/bootstrap-claim": "5eed"}}})
        _write_values(core, annotations={CREATED_UID: "claim:5eed"})
    finally:
        operator.start()
    wait_for(custom, "ServiceToken", NAMESPACE, TOKEN, lambda o: o["spec"]["roles"] == ["power-user"])
    secret = core.read_namespaced_secret(SECRET, NAMESPACE)
    assert secret.metadata.annotations[CREATED_UID] == made["metadata"]["uid"]
    core.delete_namespaced_secret(SECRET, NAMESPACE)
    assert _gone(custom)


def test_a_removed_bootstrap_secret_revokes_its_token_when_a_later_settle_takes_the_revokes_place(
        api_client, custom, core, bootstrap_namespace, operator_stopped, no_events):
    """The deletion's revoke waits in the work queue under the bootstrap's one key, and a
    resync's settle, submitted under that key before it ran, takes its place. The settle finds
    no Secret: the Secret as the operator last saw it still names the token it created.

    Staged in this process (the interleaving of the test above, made exact): the token was
    created by an operator that crashed before it could add an owner reference, so Kubernetes'
    garbage collector would not remove it either."""
    made = create(custom, "ServiceToken", NAMESPACE, TOKEN, {"roles": ["reader"]})
    _write_values(core, annotations={CREATED_UID: made["metadata"]["uid"]})
    secret = api_client.sanitize_for_serialization(core.read_namespaced_secret(SECRET, NAMESPACE))
    memo = operator_memo(api_client)
    core.delete_namespaced_secret(SECRET, NAMESPACE)

    bootstrap_secret(type="DELETED", body=kopf.Body(secret), memo=memo, logger=LOG)
    assert [key for key, _, _ in memo.work.submitted] == [("bootstrap",)]
    settle_bootstrap(memo, LOG)  # what a resync submits under the same key, in its place

    assert _gone(custom, timeout=5), "the token the operator created outlived its bootstrap Secret"


def test_a_bootstrap_secret_deleted_before_its_watch_began_revokes_its_token(
        api_client, custom, core, bootstrap_namespace, operator_stopped, no_events):
    """At start the resync settles the bootstrap token from the Secret as it reads it; the
    Secret's own watch begins a moment later. A Secret deleted in between sends that watch no
    event: its first listing, which lacks it, settles the token as a deletion, and the Secret
    as the resync read it still names the token the operator created.

    Staged in this process, exactly: the resync's settle, the deletion, then the listing."""
    made = create(custom, "ServiceToken", NAMESPACE, TOKEN, {"roles": ["power-user"], "ttl": "24h"})
    _write_values(core, annotations={CREATED_UID: made["metadata"]["uid"]})
    memo = operator_memo(api_client)
    settle_bootstrap(memo, LOG)  # the resync at start: the Secret is there, the token stays
    assert not _gone(custom, timeout=1)
    core.delete_namespaced_secret(SECRET, NAMESPACE)

    bootstrap_listed(set(), memo, LOG)  # the watch's first listing: no Secret
    assert [key for key, _, _ in memo.work.submitted] == [("bootstrap",)]
    for _, work, args in memo.work.submitted:
        work(*args)
    assert _gone(custom, timeout=5), "the token the operator created outlived its bootstrap Secret"
