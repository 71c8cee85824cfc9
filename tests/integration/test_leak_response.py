"""A leaked token in one command: refused at once (with or without the operator), a successor
minted into the same Secret with no overlap, the restart targets rolled. Against the real API
server, the operator and the authenticator as processes; tenants through impersonation."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes import client

from tokenwarden import devcluster, kube
from tokenwarden.cli._kubeopts import Kube
from tokenwarden.cli._leaks import revoke_leaked
from tokenwarden.handlers._leak_reports import LeakReportOptions, LeakReports
from tokenwarden.kube import ApiPermanentError
from tokenwarden.policies._leak_reports import load_keys

from ..conftest import AuthenticatorProcess
from .kubehelpers import create, get, phase_is, wait_for, wait_for_event
from .test_authenticator import _eventually
from .test_cli import run, tokenwarden
from .test_import import _source
from .test_rotation import _daemonset, _restarted_at, _secret, _sha
from .test_tenancy import apply_rbac, wait_until_allowed

LEAKED = "tokenwarden.io/leaked"
ROTATING = {"roles": ["writer"], "ttl": "24h",
            "rotation": {"renewBefore": "1h", "restartTargets": [{"kind": "DaemonSet", "name": "agent"}]}}


def _verify(authenticator, token: str):
    answer = authenticator.get("/verify", {"Authorization": f"Bearer {token}"})
    return answer.status_code, answer.json().get("reason")


def _minted(custom, core, namespace, name, spec=ROTATING) -> tuple[dict, str]:
    create(custom, "ServiceToken", namespace, name, spec)
    token = wait_for(custom, "ServiceToken", namespace, name, phase_is("Active"))
    return token, _secret(core, namespace, name)["token"]


def _replaced(custom, namespace, name, old_hash):
    return wait_for(custom, "ServiceToken", namespace, name, lambda o: o["status"].get("tokenHash") != old_hash)


def test_a_leaked_token_is_refused_at_once_and_replaced_with_no_overlap(
        cluster, operator, authenticator, api_client, custom, core, namespace):
    _daemonset(api_client, namespace, "agent")
    token, old = _minted(custom, core, namespace, "ci")
    assert _verify(authenticator, old)[0] == 200

    done = run(cluster, namespace, "token", "revoke", "--leaked", input=old + "\n")
    assert done.returncode == 0, done.stderr
    status = token["status"]
    assert f"ServiceToken {namespace}/ci (token id {status['tokenId']})" in done.stdout
    assert "successor minted into Secret ci with no overlap" in done.stdout
    assert "restart targets rolled: DaemonSet/agent" in done.stdout
    assert old not in done.stdout + done.stderr

    assert _eventually(lambda: _verify(authenticator, old)[0] == 401)
    after = get(custom, "ServiceToken", namespace, "ci")
    secret = _secret(core, namespace, "ci")
    assert set(secret) == {"token"} and secret["token"] != old  # no token.previous: no overlap
    assert after["status"]["tokenHash"] == _sha(secret["token"])
    assert after["status"].get("previousTokenHash") is None
    assert after["metadata"]["annotations"][LEAKED] == status["tokenHash"]
    assert _eventually(lambda: _verify(authenticator, secret["token"])[0] == 200)
    assert _restarted_at(api_client, namespace, "agent") == after["status"]["rotatedAt"]
    wait_for_event(core, namespace, "ci", "TokenLeaked")
    assert _verify(authenticator, old)[0] == 401

    # The same value again: nothing holds it any more.
    again = run(cluster, namespace, "service-token", "revoke", "--leaked", input=old)
    assert again.returncode == 1 and "no ServiceToken or IngestionAPIKey you can see holds this value" in again.stderr
    assert old not in operator.log() + authenticator.log()


def test_the_leak_holds_while_the_operator_is_down(cluster, operator, authenticator, custom, core, namespace):
    token, old = _minted(custom, core, namespace, "offline", {"roles": ["writer"]})
    assert _verify(authenticator, old)[0] == 200
    operator.stop(kill=True)
    try:
        done = run(cluster, namespace, "token", "revoke", "--leaked", "--timeout", "2", input=old)
        assert done.returncode == 0, done.stderr
        assert "the authenticator refuses it from now on" in done.stdout
        assert "the operator has not minted the successor yet" in done.stderr
        assert _eventually(lambda: _verify(authenticator, old) == (401, "leaked"))
        assert _secret(core, namespace, "offline")["token"] == old  # nothing minted without the operator
    finally:
        operator.start()
    after = _replaced(custom, namespace, "offline", token["status"]["tokenHash"])
    successor = _secret(core, namespace, "offline")
    assert set(successor) == {"token"} and after["status"]["tokenHash"] == _sha(successor["token"])
    assert _eventually(lambda: _verify(authenticator, successor["token"])[0] == 200)
    assert _verify(authenticator, old)[0] == 401


def test_a_leaked_previous_token_ends_the_overlap(operator, authenticator, custom, core, namespace):
    token, first = _minted(custom, core, namespace, "overlap", {"roles": ["writer"]})
    custom.patch_namespaced_custom_object("tokenwarden.io", "v1alpha1", namespace, "servicetokens", "overlap",
                                          {"metadata": {"annotations": {"tokenwarden.io/rotate": "r1"}}})
    rotated = _replaced(custom, namespace, "overlap", token["status"]["tokenHash"])
    second = _secret(core, namespace, "overlap")["token"]
    assert rotated["status"]["previousTokenHash"] == _sha(first)
    assert _eventually(lambda: _verify(authenticator, first)[0] == 200)  # the overlap

    kube_ = Kube(kube.load_api_client(str(operator.kubeconfig)), namespace)
    assert revoke_leaked(kube_, [first], "tokenwarden-system/tokenwarden-import-key", timeout=30)
    assert _eventually(lambda: _verify(authenticator, first)[0] == 401)
    final = _replaced(custom, namespace, "overlap", rotated["status"]["tokenHash"])
    assert final["status"].get("previousTokenHash") is None
    assert set(_secret(core, namespace, "overlap")) == {"token"}
    assert _verify(authenticator, second)[0] == 401  # the Secret leaked with both: neither is kept


def test_an_imported_key_is_found_by_its_hmac_and_refused(cluster, operator, authenticator, custom, core, namespace):
    value = "legacy-key-0123456789abcdef"
    _source(core, namespace, "legacy-source", value)
    create(custom, "ServiceToken", namespace, "legacy", {"roles": ["writer"],
                                                         "import": {"secretRef": {"name": "legacy-source"}}})
    token = wait_for(custom, "ServiceToken", namespace, "legacy", phase_is("Active"))
    assert token["status"]["tokenHash"].startswith("hmac-sha256:")
    assert _eventually(lambda: _verify(authenticator, value)[0] == 200)

    done = run(cluster, namespace, "token", "revoke", "--leaked", "--import-key",
               "tokenwarden-system/tokenwarden-import-key", input=value)
    assert done.returncode == 0, done.stderr
    assert "put a new value into its source Secret" in done.stdout
    assert _eventually(lambda: _verify(authenticator, value) == (401, "leaked"))
    # Its owner replaces the value: the new one verifies, the leaked one stays refused.
    core.patch_namespaced_secret("legacy-source", namespace, {
        "data": {"token": base64.b64encode(b"legacy-key-replaced-0123456789").decode()}})
    assert _eventually(lambda: _verify(authenticator, "legacy-key-replaced-0123456789")[0] == 200)
    assert _verify(authenticator, value)[0] == 401


def _role(namespace: str, name: str, verbs: list[str]) -> list[dict]:
    return [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name},
             "rules": [{"apiGroups": ["tokenwarden.io"], "resources": ["servicetokens", "ingestionapikeys"],
                        "verbs": verbs}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}]}]


def _as(cluster, user: str, namespace: str) -> Kube:
    api = kube.load_api_client(str(cluster.kubeconfig))
    api.set_default_header("Impersonate-User", user)
    return Kube(api, namespace)


def test_whoever_may_patch_the_token_may_revoke_it(cluster, operator, authenticator, api_client, custom, core,
                                                   namespace, capsys):
    token, old = _minted(custom, core, namespace, "shared", {"roles": ["writer"]})
    apply_rbac(api_client, namespace, _role(namespace, "viewer", ["get", "list"]))
    apply_rbac(api_client, namespace, _role(namespace, "responder", ["get", "list", "patch"]))
    for user, verb in (("viewer", "list"), ("responder", "patch")):
        wait_until_allowed(api_client, user, None, namespace, verb, "servicetokens")

    # A user who may only read finds the token, in its own namespace, and may not revoke it.
    with pytest.raises(ApiPermanentError, match="cannot patch"):
        revoke_leaked(_as(cluster, "viewer", namespace), [old], "tokenwarden-system/tokenwarden-import-key", 0)
    assert LEAKED not in (get(custom, "ServiceToken", namespace, "shared")["metadata"].get("annotations") or {})
    assert _verify(authenticator, old)[0] == 200

    capsys.readouterr()
    assert revoke_leaked(_as(cluster, "responder", namespace), [old], "tokenwarden-system/tokenwarden-import-key",
                         30)
    out = capsys.readouterr()
    assert f"ServiceToken {namespace}/shared" in out.out and old not in out.out + out.err
    assert _eventually(lambda: _verify(authenticator, old)[0] == 401)
    _replaced(custom, namespace, "shared", token["status"]["tokenHash"])


def test_bad_input_names_the_fix(cluster, namespace):
    assert "no token on stdin" in run(cluster, namespace, "token", "revoke", "--leaked", input="\n").stderr
    assert "give --leaked" in run(cluster, namespace, "token", "revoke", input="x").stderr
    spaced = run(cluster, namespace, "token", "revoke", "--leaked", input="two words")
    assert spaced.returncode == 2 and "line 1 of stdin is not a token" in spaced.stderr


# -- the leak-report endpoint (secret scanners) ---------------------------------------------

def _scanner_keys(*names: str) -> tuple[dict, str]:
    """Private keys made here, and the public ones in GitHub's public_keys JSON."""
    private = {name: ec.generate_private_key(ec.SECP256R1()) for name in names}
    public = {"public_keys": [{"key_identifier": name, "is_current": True, "key": key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()}
        for name, key in private.items()]}
    return private, json.dumps(public)


def _signed(key, key_id: str, body: bytes) -> dict:
    return {"Github-Public-Key-Identifier": key_id, "Content-Type": "application/json",
            "Github-Public-Key-Signature": base64.b64encode(key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()}


@pytest.fixture
def report_to(cluster, api_client):
    """POST to the leak-report endpoint, served as the operator serves it, with the API clients
    of a cluster admin (the operator's rights) and a public key configured."""
    private, public = _scanner_keys("scanner-1", "other")
    configured = {k: v for k, v in load_keys(public).items() if k == "scanner-1"}
    memo = SimpleNamespace(custom=client.CustomObjectsApi(api_client), core=client.CoreV1Api(api_client),
                           namespaces=[], import_keys=SimpleNamespace(key=None))
    reports = LeakReports(LeakReportOptions(port=1, keys=configured), memo)

    def post(body: bytes, headers: dict):
        async def go():
            async with TestClient(TestServer(reports.app())) as http:
                answer = await http.post("/secret-scanning", data=body, headers=headers)
                return answer.status, await answer.json()
        return asyncio.run(go())

    post.private = private
    return post


def test_a_signed_report_revokes_and_is_recorded_as_an_event(operator, authenticator, custom, core, namespace,
                                                            report_to):
    token, value = _minted(custom, core, namespace, "scanned", {"roles": ["writer"]})
    unknown = "twst_" + "x" * 49
    body = json.dumps([{"token": value, "type": "tokenwarden_service_token", "source": "content",
                        "url": "https://github.com/octo/repo/blob/abc/config.yaml"},
                       {"token": unknown, "type": "tokenwarden_service_token", "source": "commit", "url": ""}]).encode()

    # Unsigned, signed with a key that is not configured, or a signature over another body: nothing revoked.
    assert report_to(body, {"Content-Type": "application/json"})[0] == 401
    assert report_to(body, _signed(report_to.private["other"], "other", body))[0] == 403
    assert report_to(body, _signed(report_to.private["scanner-1"], "scanner-1", body + b" "))[0] == 403
    assert report_to(body, {**_signed(report_to.private["scanner-1"], "scanner-1", body),
                            "Github-Public-Key-Signature": "not base64!"})[0] == 403
    assert LEAKED not in (get(custom, "ServiceToken", namespace, "scanned")["metadata"].get("annotations") or {})
    assert _verify(authenticator, value)[0] == 200

    status, answers = report_to(body, _signed(report_to.private["scanner-1"], "scanner-1", body))
    assert status == 200
    assert answers == [
        {"token_hash": hashlib.sha256(value.encode()).hexdigest(), "token_type": "tokenwarden_service_token",
         "label": "true_positive"},
        {"token_hash": hashlib.sha256(unknown.encode()).hexdigest(), "token_type": "tokenwarden_service_token",
         "label": "false_positive"}]
    assert _eventually(lambda: _verify(authenticator, value)[0] == 401)
    _replaced(custom, namespace, "scanned", token["status"]["tokenHash"])
    event = wait_for_event(core, namespace, "scanned", "LeakReported")
    assert "https://github.com/octo/repo/blob/abc/config.yaml" in event.message and value not in event.message
    assert status == 200 and value not in str(core.list_namespaced_event(namespace).items)


def test_a_bad_report_is_refused_with_what_is_wrong(report_to):
    for body, message in ((b"{nope", "not JSON"), (b'{"token": "x"}', "JSON array"),
                          (b'[{"type": "t"}]', "item 0 has no token")):
        status, answer = report_to(body, _signed(report_to.private["scanner-1"], "scanner-1", body))
        assert status == 400 and message in answer["error"]


def test_the_operator_refuses_leak_report_flags_that_cannot_work(tmp_path):
    assert "needs --leak-report-keys" in tokenwarden("operator", "-A", "--leak-report-port", "8444").stderr
    keys = tmp_path / "keys.json"
    keys.write_text('{"public_keys": [{"key_identifier": "k", "key": "not a PEM"}]}')
    refused = tokenwarden("operator", "-A", "--leak-report-port", "8444", "--leak-report-keys", str(keys))
    assert refused.returncode == 2 and "not GitHub's public_keys JSON" in refused.stderr


# -- the access log: who still uses a leaked token -------------------------------------------

@pytest.fixture(scope="module")
def audited(cluster, operator, tmp_path_factory):
    """An authenticator of its own with the access log on, logging failures only."""
    workdir = tmp_path_factory.mktemp("audited")
    log = workdir / "access.jsonl"
    process = AuthenticatorProcess(cluster, workdir, port=devcluster.free_port(),
                                   extra=("--access-log", str(log), "--access-log-sample-successes", "0"))
    process.access_log = log
    yield process
    process.stop()


def test_the_access_log_names_who_uses_a_leaked_token_and_never_holds_it(operator, audited, custom, core,
                                                                         namespace):
    # An imported key: it stays refused as leaked (a minted token is soon replaced, and its old
    # value is then merely unknown).
    value = "audited-key-0123456789abcdef"
    _source(core, namespace, "audited-source", value)
    create(custom, "ServiceToken", namespace, "audited", {"roles": ["writer"],
                                                          "import": {"secretRef": {"name": "audited-source"}}})
    token = wait_for(custom, "ServiceToken", namespace, "audited", phase_is("Active"))
    assert _eventually(lambda: _verify(audited, value)[0] == 200)
    kube_ = Kube(kube.load_api_client(str(operator.kubeconfig)), namespace)
    assert revoke_leaked(kube_, [value], "tokenwarden-system/tokenwarden-import-key", timeout=0)
    assert _eventually(lambda: _verify(audited, value) == (401, "leaked"))

    def lines():
        text = audited.access_log.read_text() if audited.access_log.exists() else ""
        return [json.loads(line) for line in text.splitlines() if '"name":"audited"' in line]

    entry = _eventually(lambda: next((e for e in lines() if e["result"] == "leaked"), None))
    assert {k: entry.get(k) for k in ("endpoint", "status", "subject", "kind", "namespace", "tokenId", "client",
                                      "path")} == {
        "endpoint": "verify", "status": 401, "subject": f"tokenwarden:{namespace}:token:audited",
        "kind": "ServiceToken", "namespace": namespace, "tokenId": token["status"]["tokenId"],
        "client": "127.0.0.1", "path": "/verify"}
    assert all(e["status"] != 200 for e in lines())  # successes sampled at 0
    assert value not in audited.access_log.read_text() and value not in audited.log()


def test_a_leaked_token_revoked_already_gets_no_successor(cluster, operator, custom, core, namespace):
    create(custom, "ServiceAccount", namespace, "gone", {})
    create(custom, "RoleBinding", namespace, "gone-writer", {"serviceAccountName": "gone", "roles": ["writer"]})
    _, value = _minted(custom, core, namespace, "orphan", {"serviceAccountName": "gone"})
    custom.delete_namespaced_custom_object("tokenwarden.io", "v1alpha1", namespace, "serviceaccounts", "gone")
    wait_for(custom, "ServiceToken", namespace, "orphan", phase_is("Revoked"))
    done = run(cluster, namespace, "token", "revoke", "--leaked", input=value)
    assert done.returncode == 0, done.stderr
    assert "it is Revoked: no successor is minted for it" in done.stdout and "has not minted" not in done.stderr
