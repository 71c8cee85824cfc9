"""The authenticator against real tokens: forward auth, TokenReview through kube-apiserver, last use."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest
import requests
from kubernetes import client
from kubernetes.client.rest import ApiException

from tokenwarden import kube

from .kubehelpers import (
    GROUP,
    KUBE_AUDIENCE,
    VERSION,
    create,
    credential_forms,
    eventually,
    get,
    kube_apiserver_user,
    phase_is,
    wait_for,
)


def _token(core, namespace, name) -> str:
    return base64.b64decode(core.read_namespaced_secret(name, namespace).data["token"]).decode()


_eventually = eventually


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
    assert accepted_in_every_form(authenticator, writer_token) == {
        (f"tokenwarden:{namespace}:serviceaccount:shipper", "reader@shop,writer")}


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


def _usage_of(name: str):
    return lambda o: name in ((o.get("status") or {}).get("serviceTokens") or {})


def test_last_use_goes_to_the_token_usage_and_the_operator_copies_it(authenticator, writer_token, custom,
                                                                     namespace):
    headers = {"X-API-Key": writer_token}
    assert _eventually(lambda: authenticator.get("/verify", headers).status_code == 200)
    for _ in range(20):
        authenticator.get("/verify", headers)
    usage = wait_for(custom, "TokenUsage", namespace, "tokenwarden-usage", _usage_of("shipper-token"))
    used = usage["status"]["serviceTokens"]["shipper-token"]
    assert used.endswith("Z")
    # The operator copies it (or a later batch's time, if one landed meanwhile).
    wait_for(custom, "ServiceToken", namespace, "shipper-token",
             lambda o: (o["status"].get("lastUsedAt") or "") >= used)


def _tenant(cluster, custom, namespace, user: str, rules: list) -> client.CustomObjectsApi:
    """A client that acts as ``user``, granted ``rules`` in ``namespace`` by a real Role."""
    rbac = client.RbacAuthorizationV1Api(custom.api_client)
    rbac.create_namespaced_role(namespace, client.V1Role(metadata=client.V1ObjectMeta(name=user), rules=rules))
    rbac.create_namespaced_role_binding(namespace, client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name=user),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=user),
        subjects=[client.RbacV1Subject(kind="User", name=user, api_group="rbac.authorization.k8s.io")]))
    api = kube.load_api_client(str(cluster.kubeconfig))
    api.set_default_header("Impersonate-User", user)
    return client.CustomObjectsApi(api)


def test_a_tenant_writing_the_token_usage_can_only_move_last_used_forward(cluster, authenticator, writer_token,
                                                                          custom, namespace):
    """The TokenUsage authorises nothing: the operator takes from it only a lastUsedAt that moves
    forward and is not in the future, for a credential that exists."""
    headers = {"X-API-Key": writer_token}
    assert _eventually(lambda: authenticator.get("/verify", headers).status_code == 200)
    wait_for(custom, "TokenUsage", namespace, "tokenwarden-usage", _usage_of("shipper-token"))
    before = wait_for(custom, "ServiceToken", namespace, "shipper-token", lambda o: o["status"].get("lastUsedAt"))
    tenant = _tenant(cluster, custom, namespace, "tenant-usage", [client.V1PolicyRule(
        api_groups=[GROUP], resources=["tokenusages/status"], verbs=["patch"])])

    def write(entries: dict) -> None:
        tenant.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, "tokenusages", "tokenwarden-usage",
                                                     {"status": {"serviceTokens": entries}})

    write({"shipper-token": "2999-01-01T00:00:00Z", "no-such-token": "2030-01-01T00:00:00Z"})
    write({"shipper-token": "2000-01-01T00:00:00Z"})
    # Later than any real use in this test, within the clock skew allowed.
    forward = (datetime.now(timezone.utc) + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    write({"shipper-token": forward})
    # One object's events arrive in order: had the year 2999 been taken, this could not be.
    after = wait_for(custom, "ServiceToken", namespace, "shipper-token",
                     lambda o: o["status"].get("lastUsedAt") == forward)
    assert after["status"]["effectiveRoles"] == before["status"]["effectiveRoles"]
    assert after["status"]["tokenHash"] == before["status"]["tokenHash"]
    assert authenticator.get("/verify?permission=write", headers).status_code == 200
    with pytest.raises(ApiException) as missing:
        get(custom, "ServiceToken", namespace, "no-such-token")
    assert missing.value.status == 404


def test_kube_apiserver_tells_a_standalone_token_from_an_account_of_the_same_name(
        cluster, authenticator, operator, custom, core, namespace):
    if cluster.plane is None:
        pytest.skip("the token webhook is configured on the local control plane only")
    create(custom, "ServiceAccount", namespace, "deployer", {})
    create(custom, "RoleBinding", namespace, "deployer-writer", {"serviceAccountName": "deployer", "roles": ["writer"]})
    create(custom, "ServiceToken", namespace, "deployer-token",
           {"serviceAccountName": "deployer", "audiences": [KUBE_AUDIENCE]})
    create(custom, "ServiceToken", namespace, "deployer", {"roles": ["reader"], "audiences": [KUBE_AUDIENCE]})
    wait_for(custom, "ServiceToken", namespace, "deployer-token",
             lambda o: phase_is("Active")(o) and o["status"].get("effectiveRoles") == ["writer"])
    wait_for(custom, "ServiceToken", namespace, "deployer", phase_is("Active"))
    account_token, standalone = _token(core, namespace, "deployer-token"), _token(core, namespace, "deployer")

    account_user = _eventually(lambda: kube_apiserver_user(cluster, account_token))
    assert account_user is not None, authenticator.log()[-2000:]
    assert account_user.username == f"tokenwarden:{namespace}:serviceaccount:deployer"
    assert {"tokenwarden:authenticated", f"tokenwarden:{namespace}:role:writer", "system:authenticated"} <= set(account_user.groups)
    standalone_user = _eventually(lambda: kube_apiserver_user(cluster, standalone))
    assert standalone_user is not None
    assert standalone_user.username == f"tokenwarden:{namespace}:token:deployer"
    assert f"tokenwarden:{namespace}:role:reader" in standalone_user.groups
    assert f"tokenwarden:{namespace}:role:writer" not in standalone_user.groups

    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", "deployer-token")
    assert _eventually(lambda: kube_apiserver_user(cluster, account_token) is None)


def test_kube_apiserver_refuses_ingestion_keys_and_tokens_for_another_audience(cluster, authenticator, operator,
                                                                               writer_token, custom, core, namespace):
    """kube-apiserver asks for its own audience; a token without it (writer_token: only the
    default audience, tokenwarden) and an ingestion key are refused, though both verify."""
    if cluster.plane is None:
        pytest.skip("the token webhook is configured on the local control plane only")
    create(custom, "IngestionAPIKey", namespace, "collector", {})
    wait_for(custom, "IngestionAPIKey", namespace, "collector", phase_is("Active"))
    key = _token(core, namespace, "collector")
    assert _eventually(lambda: authenticator.get("/verify?permission=ingest", {"X-API-Key": key}).status_code == 200)
    assert _eventually(lambda: authenticator.get("/verify", {"X-API-Key": writer_token}).status_code == 200)
    assert kube_apiserver_user(cluster, key) is None
    assert kube_apiserver_user(cluster, writer_token) is None
    assert _review(authenticator, key)["status"] == {
        "authenticated": False, "error": "token rejected: ingestion API keys are not Kubernetes credentials"}


def _review(authenticator, token: str, audiences: list[str] | None = None) -> dict:
    spec = {"token": token, **({"audiences": audiences} if audiences is not None else {})}
    response = requests.post(authenticator.url + "/apis/authentication.k8s.io/v1/tokenreviews",
                             json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec},
                             verify=authenticator.ca, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_review_is_answered_for_the_audiences_it_asks_for(authenticator, writer_token):
    assert _eventually(lambda: authenticator.get("/verify", {"X-API-Key": writer_token}).status_code == 200)
    default = _review(authenticator, writer_token)["status"]
    assert default["authenticated"] is True and default["audiences"] == ["tokenwarden"]
    assert _review(authenticator, writer_token, ["elsewhere", "tokenwarden"])["status"]["audiences"] == ["tokenwarden"]
    other = _review(authenticator, writer_token, ["elsewhere"])["status"]
    assert other == {"authenticated": False, "error": "token rejected: not valid for the audience(s) elsewhere"}


def test_a_project_key_answers_only_for_its_project(authenticator, operator, custom, core, namespace):
    create(custom, "IngestionAPIKey", namespace, "team-a-collector", {"project": "team-a"})
    create(custom, "IngestionAPIKey", namespace, "any-collector", {})
    for name in ("team-a-collector", "any-collector"):
        wait_for(custom, "IngestionAPIKey", namespace, name, phase_is("Active"))
    team_a = {"X-API-Key": _token(core, namespace, "team-a-collector")}
    anywhere = {"X-API-Key": _token(core, namespace, "any-collector")}
    assert _eventually(lambda: authenticator.get("/verify?permission=ingest", team_a).status_code == 200)
    assert _eventually(lambda: authenticator.get("/verify?permission=ingest", anywhere).status_code == 200)

    refused = authenticator.get("/verify?permission=ingest&project=team-b", team_a)
    assert (refused.status_code, refused.json()["reason"]) == (403, "project")
    assert "X-Auth-Project" not in refused.headers
    refused = authenticator.get("/verify?permission=ingest", {**team_a, "projectID": "team-b"})
    assert refused.status_code == 403 and "X-Auth-Project" not in refused.headers
    assert authenticator.get("/verify?project=team-a", team_a).headers["X-Auth-Project"] == "team-a"
    assert authenticator.get("/verify", team_a).headers["X-Auth-Project"] == "team-a"

    assert authenticator.get("/verify?project=team-b", anywhere).headers["X-Auth-Project"] == "team-b"
    assert "X-Auth-Project" not in authenticator.get("/verify", anywhere).headers
    injected = authenticator.get("/verify", {**anywhere, "projectID": "team-b,admin"})
    assert injected.status_code == 403 and "X-Auth-Project" not in injected.headers


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
    {"Authorization": "Basic " + "é".encode().decode("latin-1")},  # UTF-8 bytes: b64decode refused them with a 500
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


def _malformed_workload_tokens(authenticator) -> float:
    line = 'tokenwarden_workload_refusals_total{reason="malformed"} '
    found = [row for row in authenticator.internal("/metrics").text.splitlines() if row.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


def _jwt_of(payload: bytes) -> str:
    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return part(b'{"alg": "RS256"}') + f".{part(payload)}.c2ln"


def test_malformed_jwts_and_bodies_are_clean_refusals_and_log_no_error(authenticator, writer_token):
    """A 400-digit exp, JSON nested 6,000 deep (in a JWT and in a TokenReview body), a body past
    the bound: each is a 4xx or a plain refusal, never a 5xx, and nothing is logged at ERROR."""
    headers = {"X-API-Key": writer_token}
    assert _eventually(lambda: authenticator.get("/verify", headers).status_code == 200)
    logged = len(authenticator.log())
    workload_refusals = _malformed_workload_tokens(authenticator)
    for payload in (b'{"aud": "tokenwarden", "exp": ' + b"9" * 400 + b"}", b"[" * 6000,
                    b'{"aud": "tokenwarden", "exp": NaN}'):
        response = authenticator.get("/verify", {"Authorization": f"Bearer {_jwt_of(payload)}"})
        assert (response.status_code, response.json()["reason"]) == (401, "malformed"), response.text
    # Refused as workload tokens, by their claims: no TokenReview was spent on them.
    assert _malformed_workload_tokens(authenticator) == workload_refusals + 3

    reviews = authenticator.url + "/apis/authentication.k8s.io/v1/tokenreviews"

    def post(body: bytes) -> requests.Response:
        return requests.post(reviews, data=body, headers={"Content-Type": "application/json"},
                             verify=authenticator.ca, timeout=10)

    response = post(b'{"spec": {"token": "' + _jwt_of(b'{"exp": ' + b"9" * 400 + b"}").encode() + b'"}}')
    assert response.status_code == 200 and response.json()["status"]["authenticated"] is False
    response = post(b"[" * 6000 + b"]" * 6000)
    assert response.status_code == 400 and "nested too deeply" in response.json()["message"]
    response = post(b'{"spec": {"token": "' + b"A" * (100 * 1024) + b'"}}')
    assert response.status_code == 413 and "larger than" in response.json()["message"]

    assert authenticator.process.poll() is None
    assert authenticator.get("/verify", headers).status_code == 200  # the valid token's answer is unchanged
    log = authenticator.log()[logged:]
    assert "Traceback" not in log and "[ERROR" not in log, log[-3000:]


def test_unknown_project_is_403(authenticator, writer_token):
    headers = {"X-API-Key": writer_token, "projectID": "no-such-project"}
    assert _eventually(lambda: authenticator.get("/verify?permission=write", headers).status_code == 200)
    assert authenticator.get("/verify?permission=read", headers).status_code == 403
