"""--log-format json, at debug level, as the chart runs it with logFormat: json: every line the
operator and the authenticator write is a JSON object with time, level, logger and message, the
records of kopf's handlers name their object, and no line holds a token (the published regex
finds none) while tokens are minted, verified in every form, reviewed, refused and rotated."""
from __future__ import annotations

import base64
import json

import pytest

from tokenwarden import devcluster
from tokenwarden.tokens import TOKEN_REGEX, mint_token

from ..conftest import AuthenticatorProcess, OperatorProcess
from .kubehelpers import GROUP, VERSION, create, eventually, phase_is, wait_for

REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"


@pytest.fixture(scope="module")
def json_operator(cluster, operator, tmp_path_factory):
    """An operator that logs JSON lines (with --debug, as every test operator) in place of the session's."""
    operator.stop()
    process = OperatorProcess(cluster.kubeconfig, tmp_path_factory.mktemp("json-operator"), ["--log-format", "json"])
    process.start()
    yield process
    process.stop()
    operator.start()


@pytest.fixture(scope="module")
def json_authenticator(cluster, json_operator, tmp_path_factory):
    process = AuthenticatorProcess(cluster, tmp_path_factory.mktemp("json-authenticator"),
                                   port=devcluster.free_port(), extra=("--log-format", "json"))
    yield process
    process.stop()


def _token(core, namespace: str, name: str) -> str:
    return base64.b64decode(core.read_namespaced_secret(name, namespace).data["token"]).decode()


def _review(authenticator: AuthenticatorProcess, token: str) -> dict:
    import requests

    response = requests.post(authenticator.url + REVIEWS, verify=authenticator.ca, timeout=5, json={
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})
    assert response.status_code == 200
    return response.json()["status"]


def _lines(process) -> list[dict]:
    """Every line of ``process``'s log, parsed: a line that is not one JSON object fails here."""
    parsed = []
    for number, line in enumerate(process.log().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {number} is not JSON: {line[:200]!r}") from None
        assert isinstance(record, dict), f"line {number} is no JSON object: {line[:200]!r}"
        parsed.append(record)
    return parsed


def test_every_line_is_json_with_its_object_and_no_token(json_operator, json_authenticator, custom, core,
                                                         namespace):
    create(custom, "ServiceAccount", namespace, "shipper", {})
    create(custom, "RoleBinding", namespace, "shipper-writer", {"serviceAccountName": "shipper", "roles": ["writer"]})
    create(custom, "ServiceToken", namespace, "shipping", {"serviceAccountName": "shipper", "ttl": "1h",
                                                         "rotation": {"renewBefore": "5m"}})
    create(custom, "IngestionAPIKey", namespace, "ingest", {"ttl": "1h"})
    first = wait_for(custom, "ServiceToken", namespace, "shipping", phase_is("Active"))["status"]
    wait_for(custom, "IngestionAPIKey", namespace, "ingest", phase_is("Active"))
    token, key = _token(core, namespace, "shipping"), _token(core, namespace, "ingest")
    unknown = mint_token("twst")  # well formed, never stored: refused, and logged nowhere either

    assert eventually(lambda: json_authenticator.get("/verify", {"X-API-Key": token}).status_code == 200)
    for credential in (token, key):
        for headers in ({"X-API-Key": credential}, {"Authorization": f"Bearer {credential}"},
                        {"Authorization": f"ApiKey {credential}"},
                        {"Authorization": "Basic " + base64.b64encode(f"service_token:{credential}".encode()).decode()}):
            assert json_authenticator.get("/verify", headers).status_code == 200
    for refused in (unknown, token + "x", token[:-1]):
        assert json_authenticator.get("/verify", {"X-API-Key": refused}).status_code == 401
    assert _review(json_authenticator, token)["authenticated"] is True
    assert _review(json_authenticator, key)["authenticated"] is False

    # A refusal at admission and a rotation on request.
    with pytest.raises(Exception, match="no-such-role"):
        create(custom, "ServiceToken", namespace, "refused", {"roles": ["no-such-role"]})
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", "shipping",
                                          {"metadata": {"annotations": {"tokenwarden.io/rotate": "json-logs"}}})
    wait_for(custom, "ServiceToken", namespace, "shipping", lambda o: o["status"].get("rotationRequest") == "json-logs"
             and o["status"]["tokenHash"] != first["tokenHash"])
    rotated = _token(core, namespace, "shipping")
    assert rotated != token
    assert eventually(lambda: json_authenticator.get("/verify", {"X-API-Key": rotated}).status_code == 200)

    secrets = {token, key, rotated, unknown}
    for name, process in (("operator", json_operator), ("authenticator", json_authenticator)):
        records = _lines(process)
        for record in records:
            assert {"time", "level", "logger", "message"} <= set(record), record
        assert {record["level"] for record in records} >= {"DEBUG", "INFO"}, name
        text = process.log()
        assert not TOKEN_REGEX.search(text), f"a token in the {name}'s log: {TOKEN_REGEX.search(text).group()[:8]}…"
        for secret in secrets:
            assert secret not in text and base64.b64encode(secret.encode()).decode() not in text
    # The authenticator logs its start, not each verification (its access log does that, apart).
    assert any(record["message"].startswith("authenticator listening") for record in _lines(json_authenticator))
    assert len(_lines(json_operator)) > 100  # kopf at debug level: every event and patch
    about = [record["object"] for record in _lines(json_operator)
             if record.get("object", {}).get("namespace") == namespace]
    assert {"kind": "ServiceToken", "namespace": namespace, "name": "shipping"} in about
    assert {"kind": "IngestionAPIKey", "namespace": namespace, "name": "ingest"} in about
