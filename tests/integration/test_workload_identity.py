"""Workload identity against the real API server: Kubernetes service-account tokens from the
TokenRequest API, checked by kube-apiserver's TokenReview, authenticate as the tokenwarden
ServiceAccount that lists them. One authenticator for the module, with short caches and a
low TokenReview rate so that expiry and the limit show within a test (and no wait for a review:
past the rate, 429 at once; the fair budget's waits have an authenticator of their own)."""
from __future__ import annotations

import base64
import json
import re
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from kubernetes import client

from tokenwarden import devcluster

from ..conftest import TEST_SETTINGS, AuthenticatorProcess
from .kubehelpers import GROUP, KUBE_AUDIENCE, VERSION, create, eventually, wait_for

CACHE_TTL = 3
RATE, BURST = 2, 5
WORKLOAD_SETTINGS = f"""
workloadIdentity:
  cacheTTL: {CACHE_TTL}s
  negativeCacheTTL: 2s
  reviewsPerSecond: {RATE}
  reviewBurst: {BURST}
  reviewWait: 0s
"""


@pytest.fixture(scope="module")
def workload_authn(cluster, operator, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workload-authn")
    config = workdir / "workload-settings.yaml"
    config.write_text(TEST_SETTINGS + WORKLOAD_SETTINGS)
    # A port of its own: the session's authenticator holds the one kube-apiserver's webhook calls.
    process = AuthenticatorProcess(cluster, workdir, port=devcluster.free_port(), extra=("--config", str(config)))
    yield process
    process.stop()


def _metric(authn, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in authn.internal("/metrics").text.splitlines():
        found = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if found and all(f'{k}="{v}"' in (found.group(1) or "") for k, v in labels.items()):
            total += float(found.group(2))
    return total


def _reviews(authn) -> float:
    return _metric(authn, "tokenwarden_workload_tokenreviews_total")


def _sa_token(core, namespace: str, name: str, audiences=("tokenwarden",)) -> str:
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=list(audiences), expiration_seconds=600))
    return core.create_namespaced_service_account_token(name, namespace, request).status.token


def _k8s_account(core, namespace: str, name: str) -> None:
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name)))


def _verify(authn, token: str, path: str = "/verify"):
    return authn.get(path, {"Authorization": f"Bearer {token}"})


def _eventually(check, timeout: float = 20.0):
    return eventually(check, timeout)


def _refused(authn, token: str, reason: str) -> bool:
    response = _verify(authn, token)
    return response.status_code == 401 and response.json()["reason"] == reason


def _condition(account: dict) -> dict:
    return next(c for c in account["status"].get("conditions") or [] if c["type"] == "WorkloadIdentitiesBound")


def test_a_workload_token_authenticates_as_the_account_that_lists_it(workload_authn, operator, core, custom,
                                                                     namespace):
    _k8s_account(core, namespace, "parca-agent")
    create(custom, "ServiceAccount", namespace, "agents",
           {"workloadIdentities": [{"serviceAccountName": "parca-agent"}, {"serviceAccountName": "otel"}]})
    create(custom, "RoleBinding", namespace, "agents-profiles",
           {"serviceAccountName": "agents", "roles": ["profile-writer"]})
    # Bound: listed and existing. otel does not exist yet: the condition names it and the fix.
    account = wait_for(custom, "ServiceAccount", namespace, "agents",
                       lambda o: (o.get("status") or {}).get("effectiveRoles") == ["profile-writer"]
                       and o["status"].get("workloadIdentities") == 1)
    assert _condition(account)["status"] == "False" and _condition(account)["reason"] == "ServiceAccountNotFound"
    assert f"kubectl create serviceaccount otel -n {namespace}" in _condition(account)["message"]
    _k8s_account(core, namespace, "otel")
    account = wait_for(custom, "ServiceAccount", namespace, "agents",
                       lambda o: o["status"].get("workloadIdentities") == 2)
    assert _condition(account)["status"] == "True"

    token = _sa_token(core, namespace, "parca-agent")
    assert _eventually(lambda: _verify(workload_authn, token).status_code == 200)
    reviews, hits = _reviews(workload_authn), _metric(workload_authn, "tokenwarden_workload_cache_total",
                                                      result="hit")
    response = _verify(workload_authn, token, "/verify?permission=write:profiles")
    assert response.status_code == 200
    assert response.headers["X-Auth-Subject"] == f"tokenwarden:{namespace}:serviceaccount:agents"
    assert response.headers["X-Auth-Roles"] == "profile-writer"
    assert response.headers["X-Auth-Via"] == "workload:parca-agent"
    assert _verify(workload_authn, token, "/verify?permission=read").status_code == 403
    # Answered from the cache: no TokenReview was sent for these.
    assert _reviews(workload_authn) == reviews
    assert _metric(workload_authn, "tokenwarden_workload_cache_total", result="hit") == hits + 2

    # The TokenReview webhook takes tokenwarden tokens only: kube-apiserver checks its own.
    review = requests.post(workload_authn.url + "/apis/authentication.k8s.io/v1/tokenreviews",
                           json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                 "spec": {"token": token}}, verify=workload_authn.ca, timeout=5)
    assert review.json()["status"]["authenticated"] is False
    # Last use reaches the account's status, through TokenUsage.
    wait_for(custom, "ServiceAccount", namespace, "agents", lambda o: bool(o["status"].get("lastUsedAt")))
    usage = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "tokenusages", "tokenwarden-usage")
    assert set(usage["status"]["serviceAccounts"]) == {"agents"}

    # A binding added later: the account's roles, and so its workloads', follow.
    create(custom, "RoleBinding", namespace, "agents-read", {"serviceAccountName": "agents", "roles": ["reader"]})
    wait_for(custom, "ServiceAccount", namespace, "agents",
             lambda o: o["status"].get("effectiveRoles") == ["profile-writer", "reader"])
    assert _eventually(lambda: _verify(workload_authn, token, "/verify?permission=read").status_code == 200)


def test_tokens_that_no_account_may_use_are_refused(workload_authn, operator, core, custom, namespace):
    for name in ("parca-agent", "stranger", "short-lived"):
        _k8s_account(core, namespace, name)
    create(custom, "ServiceAccount", namespace, "agents",
           {"workloadIdentities": [{"serviceAccountName": "parca-agent"},
                                   {"serviceAccountName": "short-lived"}]})
    create(custom, "RoleBinding", namespace, "agents-writer", {"serviceAccountName": "agents", "roles": ["writer"]})
    wait_for(custom, "ServiceAccount", namespace, "agents",
             lambda o: (o.get("status") or {}).get("effectiveRoles") == ["writer"])
    token = _sa_token(core, namespace, "parca-agent")
    assert _eventually(lambda: _verify(workload_authn, token).status_code == 200)

    reviews = _reviews(workload_authn)
    # Another audience (kube-apiserver's own): refused on its claims, before any TokenReview.
    assert _refused(workload_authn, _sa_token(core, namespace, "parca-agent", [KUBE_AUDIENCE]), "audience")
    assert _reviews(workload_authn) == reviews
    # A Kubernetes ServiceAccount that no account lists.
    assert _refused(workload_authn, _sa_token(core, namespace, "stranger"), "unbound")
    # One of the same name in another namespace, where no account lists it.
    other = f"elsewhere-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    try:
        _k8s_account(core, other, "parca-agent")
        assert _refused(workload_authn, _sa_token(core, other, "parca-agent"), "unbound")
    finally:
        core.delete_namespace(other)

    # A deleted Kubernetes ServiceAccount: its token is refused once the cached answer ends.
    doomed = _sa_token(core, namespace, "short-lived")
    assert _verify(workload_authn, doomed).status_code == 200
    core.delete_namespaced_service_account("short-lived", namespace)
    assert _eventually(lambda: _refused(workload_authn, doomed, "rejected"), timeout=CACHE_TTL + 15)

    # The account disabled, then deleted: refused at once, although the TokenReview answer is cached.
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "serviceaccounts", "agents",
                                          {"spec": {"disabled": True}})
    assert _eventually(lambda: _refused(workload_authn, token, "disabled"))
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "serviceaccounts", "agents")
    assert _eventually(lambda: _verify(workload_authn, token).status_code == 401
                       and _verify(workload_authn, token).json()["reason"] in ("deleted", "unbound"))


def _made_up_jwt(kid: str = "k") -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
    claims = {"aud": ["tokenwarden"], "exp": int(time.time()) + 600, "sub": "system:serviceaccount:x:y",
              "jti": secrets.token_hex(8)}
    return f"{part({'alg': 'RS256', 'kid': kid})}.{part(claims)}.{secrets.token_urlsafe(256)}"


def _kid(token: str) -> str:
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def test_made_up_jwts_cost_no_tokenreview(workload_authn, core, namespace):
    """Checked against the issuer's keys first: a made-up JWT, with the issuer's kid or another,
    never reaches kube-apiserver, and unknown kids read the keys at most once per interval."""
    _k8s_account(core, namespace, "someone")
    real = _sa_token(core, namespace, "someone")
    assert _eventually(lambda: _refused(workload_authn, real, "unbound"))  # signed: reviewed, then not listed
    reviews, reads = _reviews(workload_authn), _metric(workload_authn, "tokenwarden_workload_issuer_key_reads_total")
    assert _metric(workload_authn, "tokenwarden_workload_issuer_keys") >= 1
    answers = [_verify(workload_authn, _made_up_jwt(_kid(real))) for _ in range(20)]
    assert {(a.status_code, a.json()["reason"]) for a in answers} == {(401, "signature")}
    answers = [_verify(workload_authn, _made_up_jwt(secrets.token_hex(8))) for _ in range(20)]
    assert {(a.status_code, a.json()["reason"]) for a in answers} == {(401, "unknown-key")}
    assert _reviews(workload_authn) == reviews
    assert _metric(workload_authn, "tokenwarden_workload_issuer_key_reads_total") <= reads + 1


def test_a_flood_of_fresh_signed_tokens_is_held_to_the_rate(workload_authn, core, namespace):
    _k8s_account(core, namespace, "flood")
    fresh = [_sa_token(core, namespace, "flood") for _ in range(40)]
    time.sleep(BURST / RATE)  # a full bucket, whatever earlier tests spent
    reviews = _reviews(workload_authn)
    started = time.monotonic()
    answers = [_verify(workload_authn, token) for token in fresh]
    elapsed = time.monotonic() - started
    sent = _reviews(workload_authn) - reviews
    assert sent <= BURST + RATE * elapsed + 1
    limited = [a for a in answers if a.status_code == 429]
    assert len(limited) >= 40 - sent - 1
    assert {a.json()["reason"] for a in limited} == {"review-rate-limited"}
    assert all(a.headers.get("Retry-After") == "1" for a in limited)
    assert {a.json()["reason"] for a in answers if a.status_code == 401} <= {"unbound"}
    assert _metric(workload_authn, "tokenwarden_workload_refusals_total", reason="review-rate-limited") >= len(limited)


def test_a_namespace_flooding_with_fresh_signed_tokens_leaves_another_its_turn(cluster, operator, core, custom,
                                                                               namespace, tmp_path):
    """A tenant who may create service-account tokens floods /verify with real, signed ones: the
    reviews are shared by namespace, so another namespace's workload still gets its review."""
    config = tmp_path / "fair.yaml"
    config.write_text(TEST_SETTINGS + "workloadIdentity:\n  reviewsPerSecond: 2\n  reviewBurst: 2\n"
                      "  reviewWait: 3s\n")  # a flooded request waits 3 s at most, under the client's 5
    fair = AuthenticatorProcess(cluster, tmp_path, port=devcluster.free_port(), extra=("--config", str(config)))
    try:
        _k8s_account(core, namespace, "parca-agent")
        create(custom, "ServiceAccount", namespace, "agents",
               {"workloadIdentities": [{"serviceAccountName": "parca-agent"}]})
        wait_for(custom, "ServiceAccount", namespace, "agents",
                 lambda o: (o.get("status") or {}).get("workloadIdentities") == 1)
        flooder = f"flood-{uuid.uuid4().hex[:6]}"
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=flooder)))
        try:
            _k8s_account(core, flooder, "minter")
            fresh = [_sa_token(core, flooder, "minter") for _ in range(40)]
            workload = _sa_token(core, namespace, "parca-agent")
            with ThreadPoolExecutor(max_workers=41) as pool:
                flood = [pool.submit(_verify, fair, token) for token in fresh]
                assert eventually(lambda: _metric(fair, "tokenwarden_workload_tokenreviews_total") >= 2, 30)
                answer = pool.submit(_verify, fair, workload).result()
                flooded = [f.result() for f in flood]
            assert answer.status_code == 200, answer.text
            assert answer.headers["X-Auth-Via"] == "workload:parca-agent"
            assert {a.status_code for a in flooded} <= {401, 429}  # unbound once reviewed, or past its wait
            assert any(a.status_code == 429 for a in flooded)  # the flood was held to the rate
        finally:
            core.delete_namespace(flooder)
    finally:
        fair.stop()
