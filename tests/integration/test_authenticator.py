"""The authenticator against real tokens: forward auth, TokenReview through kube-apiserver, lastUsedAt."""
from __future__ import annotations

import base64
import time

import pytest
import requests

from .kubehelpers import GROUP, VERSION, create, credential_forms, kube_apiserver_user, phase_is, wait_for


def _token(core, namespace, name) -> str:
    return base64.b64decode(core.read_namespaced_secret(name, namespace).data["token"]).decode()


def _eventually(check, timeout: float = 15.0):
    """The authenticator learns of changes through its watch: allow it a moment."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


@pytest.fixture
def writer_token(operator, custom, core, namespace):
    create(custom, "ServiceAccount", namespace, "shipper", {})
    create(custom, "RoleBinding", namespace, "shipper-writer", {"serviceAccountName": "shipper", "roles": ["writer"]})
    create(custom, "RoleBinding", namespace, "shipper-reader-shop",
           {"serviceAccountName": "shipper", "roles": ["reader"], "project": "shop"})
    create(custom, "ServiceToken", namespace, "shipper-token", {"serviceAccountName": "shipper"})
    wait_for(custom, "ServiceToken", namespace, "shipper-token",
             lambda o: phase_is("Active")(o) and len(o["status"].get("effectiveRoles", [])) == 2)
    return _token(core, namespace, "shipper-token")


def accepted_in_every_form(authenticator, token: str, path: str = "/verify") -> set[tuple[str, str]]:
    """(subject, roles) the authenticator answers for each form of ``token``; one pair when
    every form is accepted alike. Waits for the authenticator to learn of the token first."""
    forms = credential_forms(token)
    assert _eventually(lambda: authenticator.get(path, forms[0]).status_code == 200)
    answers = set()
    for headers in forms:
        response = authenticator.get(path, headers)
        assert response.status_code == 200, headers.keys()
        answers.add((response.headers["X-Auth-Subject"], response.headers["X-Auth-Roles"]))
    return answers


def test_every_credential_form_is_accepted(authenticator, writer_token, namespace):
    assert accepted_in_every_form(authenticator, writer_token) == {(f"tokenwarden:{namespace}:shipper",
                                                                    "reader@shop,writer")}


def test_permissions_and_projects(authenticator, writer_token):
    bearer = {"Authorization": f"Bearer {writer_token}"}
    assert _eventually(lambda: authenticator.get("/verify", bearer).status_code == 200)
    assert authenticator.get("/verify?permission=write", bearer).status_code == 200
    assert authenticator.get("/verify?permission=read", bearer).status_code == 403
    in_shop = authenticator.get("/verify?permission=read", {**bearer, "projectID": "shop"})
    assert in_shop.status_code == 200 and in_shop.headers["X-Auth-Project"] == "shop"
    assert authenticator.get("/verify?permission=read&project=other", bearer).status_code == 403


def test_unknown_malformed_and_revoked_tokens_are_401(authenticator, writer_token, custom, namespace):
    assert _eventually(lambda: authenticator.get("/verify", {"X-API-Key": writer_token}).status_code == 200)
    tampered = writer_token[:-1] + ("A" if writer_token[-1] != "A" else "B")
    response = authenticator.get("/verify", {"X-API-Key": tampered})
    assert response.status_code == 401 and response.json()["reason"] == "malformed"
    assert "WWW-Authenticate" in response.headers
    assert authenticator.get("/verify").status_code == 401
    assert authenticator.get("/verify", {"X-API-Key": "glsa_not_one_of_ours_at_all"}).json()["reason"] == "unknown"

    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", "shipper-token")
    assert _eventually(lambda: authenticator.get("/verify", {"X-API-Key": writer_token}).status_code == 401)


def test_disabled_account_fails_verification(authenticator, writer_token, custom, namespace):
    headers = {"X-API-Key": writer_token}
    assert _eventually(lambda: authenticator.get("/verify", headers).status_code == 200)
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "serviceaccounts", "shipper",
                                          {"spec": {"disabled": True}})
    assert _eventually(lambda: authenticator.get("/verify", headers).json().get("reason") == "disabled")


def test_ingestion_keys_grant_only_ingest(authenticator, operator, custom, core, namespace):
    create(custom, "IngestionAPIKey", namespace, "collector", {})
    wait_for(custom, "IngestionAPIKey", namespace, "collector", phase_is("Active"))
    headers = {"Authorization": f"ApiKey {_token(core, namespace, 'collector')}"}
    assert _eventually(lambda: authenticator.get("/verify?permission=ingest", headers).status_code == 200)
    assert authenticator.get("/verify?permission=ingest", headers).headers["X-Auth-Roles"] == "ingest"
    assert authenticator.get("/verify?permission=write", headers).status_code == 403


def test_expired_token_is_refused_at_its_instant(authenticator, operator, custom, core, namespace):
    create(custom, "ServiceToken", namespace, "blink", {"roles": ["reader"], "ttl": "4s"})
    wait_for(custom, "ServiceToken", namespace, "blink", phase_is("Active"))
    headers = {"X-API-Key": _token(core, namespace, "blink")}
    assert _eventually(lambda: authenticator.get("/verify", headers).status_code == 200)
    reason = _eventually(lambda: authenticator.get("/verify", headers).json().get("reason") in ("expired",), 10)
    assert reason


def test_last_used_is_written_back_in_batches(authenticator, writer_token, custom, namespace):
    headers = {"X-API-Key": writer_token}
    assert _eventually(lambda: authenticator.get("/verify", headers).status_code == 200)
    for _ in range(20):
        authenticator.get("/verify", headers)
    used = wait_for(custom, "ServiceToken", namespace, "shipper-token", lambda o: o["status"].get("lastUsedAt"))
    assert used["status"]["lastUsedAt"].endswith("Z")


def test_kube_apiserver_authenticates_tokens_through_the_webhook(cluster, authenticator, writer_token,
                                                                 custom, namespace):
    if cluster.plane is None:
        pytest.skip("the token webhook is configured on the local control plane only")

    def whoami():
        return kube_apiserver_user(cluster, writer_token)

    user = _eventually(whoami)
    assert user is not None, authenticator.log()[-2000:]
    assert user.username == f"tokenwarden:{namespace}:shipper"
    assert "tokenwarden:role:writer" in user.groups
    assert "system:authenticated" in user.groups

    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", "shipper-token")
    assert _eventually(lambda: whoami() is None)


def test_metrics_carry_no_token_material(authenticator, writer_token):
    headers = {"X-API-Key": writer_token}
    assert _eventually(lambda: authenticator.get("/verify", headers).status_code == 200)
    metrics = authenticator.internal("/metrics").text
    assert 'tokenwarden_verifications_total{endpoint="verify",result="ok"}' in metrics
    assert writer_token not in metrics
    assert "sha256" not in metrics
    assert writer_token not in authenticator.log()


def test_an_oversized_header_is_refused_and_the_authenticator_serves_on(authenticator):
    """A 1 MiB header is refused after its first 8 KiB: the answer is 431 or 400 and the
    connection is closed. The client may still be sending then, and its TCP stack may drop
    the answer on the reset that follows, so a closed connection counts as refused too."""
    try:
        response = authenticator.get("/verify", {"X-API-Key": "twst_" + "A" * (1024 * 1024)})
    except requests.exceptions.ConnectionError:
        response = None
    if response is not None:
        assert response.status_code in (400, 431) and len(response.text) < 300
    assert authenticator.process.poll() is None
    assert authenticator.internal("/healthz").status_code == 200
    assert "Traceback" not in authenticator.log()


@pytest.mark.parametrize("headers", [
    {"X-API-Key": "ünïcödé-tökén".encode().decode("latin-1")},
    {"Authorization": "Bearer tab\tinside"},
    {"Authorization": "Basic %%%not-base64%%%"},
    {"Authorization": "Bearer"},
    {"X-API-Key": "twik_" + "A" * 49},
])
def test_hostile_headers_get_a_clean_4xx(authenticator, headers):
    try:
        response = authenticator.get("/verify", headers)
    except requests.exceptions.ConnectionError:
        pytest.fail("the authenticator dropped the connection")
    assert response.status_code in (400, 401, 431), response.text
    assert "Traceback" not in response.text and len(response.text) < 300
    for value in headers.values():
        assert value[-20:] not in response.text
    assert authenticator.process.poll() is None
    assert authenticator.internal("/healthz").status_code == 200


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"spec": {}}', b'{"spec": {"token": 42}}'])
def test_malformed_token_reviews_get_400_or_a_refusal(authenticator, body):
    response = requests.post(authenticator.url + "/apis/authentication.k8s.io/v1/tokenreviews", data=body,
                             headers={"Content-Type": "application/json"}, verify=authenticator.ca, timeout=5)
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert response.json()["status"]["authenticated"] is False
    assert "Traceback" not in response.text


def test_unknown_project_is_403(authenticator, writer_token):
    headers = {"X-API-Key": writer_token, "projectID": "no-such-project"}
    assert _eventually(lambda: authenticator.get("/verify?permission=write", headers).status_code == 200)
    assert authenticator.get("/verify?permission=read", headers).status_code == 403
