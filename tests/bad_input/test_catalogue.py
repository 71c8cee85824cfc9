"""A catalogue of bad input across custom resources, CLI flags, Helm values and HTTP headers.

Each case must get a clear error that names the problem, and nothing else may change: the
operator and authenticator keep running and a canary token keeps its Secret and hash.
"""
from __future__ import annotations

import base64
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from kubernetes import client
from kubernetes.client.rest import ApiException

from tokenwarden import devcluster

from ..conftest import REPO
from ..integration.kubehelpers import create, get, phase_is, ready_reason, wait_for

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def bad_ns(core):
    name = f"bad-input-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="module")
def canary(operator, custom, core, bad_ns):
    create(custom, "ServiceAccount", bad_ns, "acct", {})
    create(custom, "RoleBinding", bad_ns, "acct-reader", {"serviceAccountName": "acct", "roles": ["reader"]})
    create(custom, "ServiceToken", bad_ns, "canary", {"serviceAccountName": "acct"})
    token = wait_for(custom, "ServiceToken", bad_ns, "canary", phase_is("Active"))
    secret = core.read_namespaced_secret("canary", bad_ns)
    return token["status"]["tokenHash"], secret.metadata.resource_version


@pytest.fixture(autouse=True)
def nothing_else_changes(request, operator, authenticator, custom, core, bad_ns, canary):
    yield
    assert operator.process.poll() is None, "the operator died"
    assert authenticator.process.poll() is None, "the authenticator died"
    token = get(custom, "ServiceToken", bad_ns, "canary")
    assert token["status"]["phase"] == "Active" and token["status"]["tokenHash"] == canary[0]
    assert core.read_namespaced_secret("canary", bad_ns).metadata.resource_version == canary[1]


# -- custom resources refused by the API server or the admission webhook ------

REFUSED = [
    ("ServiceToken", {"roles": ["reader"], "expiration": "2030-01-01", "ttl": "1h"}, "at most one of"),
    ("ServiceToken", {"roles": ["reader"], "expiration": "31/12/2030"}, "expiration"),
    ("ServiceToken", {"roles": ["reader"], "expiration": "2020-01-01"}, "in the past"),
    ("ServiceToken", {"roles": ["reader"], "ttl": "0s"}, "0s"),
    ("ServiceToken", {"roles": ["reader"], "ttl": "-1h"}, "ttl"),
    ("ServiceToken", {"roles": ["reader"], "ttl": "10000000h"}, "limit"),
    ("ServiceToken", {"roles": ["superuser"]}, "superuser"),
    ("ServiceToken", {}, "needs spec.roles"),
    ("ServiceToken", {"serviceAccountName": "other-ns/acct"}, "serviceAccountName"),
    ("ServiceToken", {"roles": ["reader"], "secretName": "Bad_Name"}, "secretName"),
    ("ServiceToken", {"roles": ["reader"], "expiration": "2099-01-01", "rotation": {"renewBefore": "1d"}},
     "rotation needs spec.ttl"),
    ("ServiceToken", {"roles": ["reader"], "ttl": "1h", "rotation": {"renewBefore": "2h"}}, "renewBefore"),
    ("ServiceToken", {"roles": ["reader"], "ttl": "1h", "rotation": {
        "renewBefore": "5m", "restartTargets": [{"kind": "Pod", "name": "x"}]}}, "kind"),
    ("ServiceToken", {"roles": ["reader"], "import": {"secretRef": {"name": "ns/other"}}}, "secretRef"),
    ("ServiceToken", {"roles": ["reader"], "import": {"secretRef": {"name": "x", "namespace": "elsewhere"}}},
     "only from a Secret in the token's own namespace"),
    ("ServiceToken", {"roles": ["reader"], "import": {"secretRef": {"name": "x", "key": "a/b"}}}, "secretRef.key"),
    ("ServiceToken", {"roles": ["reader"], "ttl": "30d", "rotation": {"renewBefore": "1d"},
                      "import": {"secretRef": {"name": "x"}}}, "rotated by its owner"),
    ("IngestionAPIKey", {"expiration": "2030-13-45"}, "expiration"),
    ("IngestionAPIKey", {"ttl": "soon"}, "ttl"),
    ("RoleBinding", {"serviceAccountName": "acct", "roles": []}, "roles"),
    ("RoleBinding", {"serviceAccountName": "acct", "roles": ["root"]}, "root"),
    ("RoleBinding", {"roles": ["reader"]}, "serviceAccountName"),
    # Names that would inject into X-Auth-Roles (reader@x,admin) or pass for another project:
    # DNS labels only, by the API server's own schema.
    ("RoleBinding", {"serviceAccountName": "acct", "roles": ["reader"], "project": "x,admin"}, "spec.project"),
    ("RoleBinding", {"serviceAccountName": "acct", "roles": ["reader"], "project": "evil@shop"}, "spec.project"),
    ("RoleBinding", {"serviceAccountName": "acct", "roles": ["a,b"]}, "spec.roles[0]"),
    ("ServiceToken", {"roles": ["a,b"]}, "spec.roles[0]"),
    ("IngestionAPIKey", {"project": "x,admin"}, "spec.project"),
    ("IngestionAPIKey", {"project": "evil@shop"}, "spec.project"),
    # An audience is one word: a TokenReview's audiences are compared whole.
    ("ServiceToken", {"roles": ["reader"], "audiences": ["a b"]}, "spec.audiences[0]"),
    ("ServiceToken", {"roles": ["reader"], "audiences": ["x,y"]}, "spec.audiences[0]"),
]


@pytest.mark.parametrize("kind, spec, words", REFUSED, ids=[f"cr-{i}" for i in range(len(REFUSED))])
def test_custom_resource_is_refused(custom, bad_ns, kind, spec, words):
    with pytest.raises(ApiException) as refused:
        create(custom, kind, bad_ns, f"bad-{uuid.uuid4().hex[:6]}", spec)
    assert refused.value.status in (400, 403, 422)
    assert words in refused.value.body, refused.value.body


def test_name_too_long_for_a_secret_label(custom, bad_ns):
    with pytest.raises(ApiException) as refused:
        create(custom, "ServiceToken", bad_ns, "n" * 64, {"roles": ["reader"]})
    assert "63" in refused.value.body


MARKED = [
    ("taken-secret", {"roles": ["reader"], "secretName": "canary"}, "Failed", "SecretConflict"),
    ("missing-account", {"serviceAccountName": "nobody"}, "Pending", "AccountNotFound"),
    ("not-granted", {"serviceAccountName": "acct", "roles": ["admin"]}, "Pending", "RolesNotGranted"),
    ("missing-source", {"roles": ["reader"], "import": {"secretRef": {"name": "absent"}}}, "Pending",
     "ImportSourceNotFound"),
    # The canary's own Secret carries no tokenwarden.io/importable label: nothing is read from it.
    ("unlabelled-source", {"roles": ["reader"], "import": {"secretRef": {"name": "canary"}}}, "Pending",
     "SourceNotImportable"),
]


@pytest.mark.parametrize("name, spec, phase, reason", MARKED, ids=[m[0] for m in MARKED])
def test_custom_resource_is_marked_with_a_reason(custom, bad_ns, name, spec, phase, reason):
    create(custom, "ServiceToken", bad_ns, name, spec)
    marked = wait_for(custom, "ServiceToken", bad_ns, name, lambda o: ready_reason(o) == reason)
    assert marked["status"]["phase"] == phase
    assert marked["status"]["conditions"][0]["message"]


# -- CLI flags -----------------------------------------------------------------

CLI = [
    (["service-token", "create", "--name", "x", "--roles", "reader", "--expiration", "2030/01/01"], "yyyy-MM-dd"),
    (["service-token", "create", "--name", "x", "--roles", "reader", "--expiration", "2001-01-01"], "past"),
    (["service-token", "create", "--name", "x", "--roles", "superuser"], "superuser"),
    (["service-token", "create", "--name", "UPPER", "--roles", "reader"], "UPPER"),
    (["service-token", "create", "--name", "x", "--roles", ","], "roles"),
    (["service-token", "create", "--name", "x", "--roles", "reader", "--expiration", "2099-01-01", "--ttl", "1h"],
     "--ttl"),
    (["service-token", "delete", "999999999999999"], "999999999999999"),
    (["ingestion-api-key", "delete", "--id", "nope"], "nope"),
    (["ingestion-api-key", "create", "--name", "x", "--expiration", "tomorrow"], "yyyy-MM-dd"),
    (["role-binding", "create", "b", "--service-account", "acct", "--roles", "root"], "root"),
    (["service-token", "list", "-o", "xml"], "xml"),
    (["service-token", "import", "--name", "x", "--from-secret", "other-ns/key", "--roles", "reader"],
     "same namespace"),
    (["migrate", "--from-file", "/nonexistent/keys.yaml"], "does not exist"),
    (["service-token", "import", "--name", "x", "--from-secret", "absent-secret", "--roles", "reader"],
     "Secret 'absent-secret' does not exist"),
    (["service-token", "import", "--name", "x", "--from-secret", "canary:token", "--roles", "reader"],
     "already belongs to ServiceToken"),
    (["service-token", "import", "--name", "x", "--from-secret", "canary:token", "--roles", "reader"],
     "opts it in with: kubectl label secret canary -n bad-input-"),
]


@pytest.mark.parametrize("args, words", CLI, ids=[f"cli-{i}" for i in range(len(CLI))])
def test_cli_flag_is_refused(cluster, bad_ns, args, words):
    result = subprocess.run([str(BIN / "tokenwarden"), *args, "--kubeconfig", str(cluster.kubeconfig),
                             "-n", bad_ns], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


# -- Helm values -----------------------------------------------------------------

HELM = [
    (["--set", "operator.replicas=two"], "/operator/replicas"),
    (["--set", "authenticator.port=0"], "/authenticator/port"),
    (["--set", "crds.enabled=maybe"], "/crds/enabled"),
    (["--set", "quotas.maxTokensPerAccount=-1"], "/quotas/maxTokensPerAccount"),
    (["--set", "prefixes.serviceToken=TW"], "/prefixes/serviceToken"),
    (["--set", "unknownKey=1"], "unknownKey"),
    (["--set", "authentication.servicetoken.bootstrap.ttl=forever"], "/authentication/servicetoken/bootstrap/ttl"),
    (["--set", "authentication.servicetoken.bootstrap.token=short",
      "--set", "authentication.servicetoken.bootstrap.roles={reader}"], "at least 32"),
    (["--set", "authentication.servicetoken.bootstrap.token=0123456789abcdef0123456789abcdefXYZ"], "roles is empty"),
    (["--values", str(REPO / "examples" / "authentication.yaml")],
     'bootstrap.token is a placeholder (it contains "<")'),
    (["--set", "authentication.servicetoken.bootstrap.token=changeme-0f3a9c2e7b1d4a8f6e5c0b9d7a6f",
      "--set", "authentication.servicetoken.bootstrap.roles={reader}"], "openssl rand -hex 32"),
]


@pytest.mark.parametrize("args, words", HELM, ids=[f"helm-{i}" for i in range(len(HELM))])
def test_helm_value_is_refused(args, words):
    helm = devcluster.ensure_helm(log=lambda *_: None)
    result = subprocess.run([str(helm), "template", "tw", str(REPO / "charts" / "tokenwarden"), *args],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert words in result.stderr, result.stderr


# -- HTTP headers ------------------------------------------------------------------

HEADERS = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer twst_" + "A" * 49},
    {"Authorization": "Basic " + base64.b64encode(b"no-colon-here").decode()},
    {"Authorization": "Basic ###"},
    {"Authorization": "Negotiate abc"},
    {"X-API-Key": "x" * 5000},
    {"X-API-Key": "twik_tooshort"},
    {"X-API-Key": "caf\u00e9".encode().decode("latin-1")},
]


@pytest.mark.parametrize("headers", HEADERS, ids=[f"http-{i}" for i in range(len(HEADERS))])
def test_http_credentials_are_refused_cleanly(authenticator, headers):
    response = authenticator.get("/verify", headers)
    assert response.status_code in (400, 401)
    assert response.json()["reason"] in ("missing", "malformed", "unknown")
    for value in headers.values():
        if len(value) > 12:
            assert value[-12:] not in response.text


@pytest.mark.parametrize("project", ["x,admin", "evil@shop", "Shop", "a" * 64, "team-a\tadmin"],
                         ids=lambda p: f"project-{len(p)}")
def test_a_project_that_cannot_exist_is_refused_and_never_echoed(authenticator, core, bad_ns, project):
    token = base64.b64decode(core.read_namespaced_secret("canary", bad_ns).data["token"]).decode()
    for headers, path in (({"X-API-Key": token, "projectID": project}, "/verify"),
                          ({"X-API-Key": token}, "/verify?project=" + requests.utils.quote(project))):
        response = authenticator.get(path, headers)
        assert (response.status_code, response.json()["reason"]) == (403, "project")
        assert "X-Auth-Project" not in response.headers


@pytest.mark.parametrize("spec", [{"token": "t", "audiences": "tokenwarden"}, {"token": "t", "audiences": [1]},
                                  {"token": "t", "audiences": {"a": "b"}}])
def test_a_token_review_with_malformed_audiences_is_400(authenticator, spec):
    response = requests.post(authenticator.url + "/apis/authentication.k8s.io/v1/tokenreviews", json={"spec": spec},
                             verify=authenticator.ca, timeout=5)
    assert response.status_code == 400 and "spec.audiences" in response.json()["message"]
