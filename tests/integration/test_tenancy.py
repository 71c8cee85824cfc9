"""A tenant can grant only what a cluster admin allowed: the admission webhook's SubjectAccessReviews
against the real API server's RBAC, with the tenant as an impersonated user holding Kubernetes'
`edit` role (which the chart's aggregated ClusterRoles extend to tokenwarden's kinds)."""
from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tokenwarden import devcluster, kube

from ..conftest import REPO
from .kubehelpers import GROUP, KUBE_AUDIENCE, PLURALS, VERSION, create, phase_is, wait_for

CHART = REPO / "charts" / "tokenwarden"
RELEASE = "tenancy"  # the chart's cluster-wide objects are named after it: none clash with test_chart's
TENANT, TENANT_GROUP = "alice", "team-a-developers"  # as in examples/tenant-rbac.yaml
IMPORTABLE = {"tokenwarden.io/importable": "true"}


def render(*args: str) -> list[dict]:
    helm = devcluster.ensure_helm(log=lambda *_: None)
    result = subprocess.run([str(helm), "template", RELEASE, str(CHART), *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def impersonating(cluster, user: str, group: str | None = None) -> client.CustomObjectsApi:
    api = kube.load_api_client(str(cluster.kubeconfig))
    api.set_default_header("Impersonate-User", user)
    if group:
        api.set_default_header("Impersonate-Group", group)
    return client.CustomObjectsApi(api)


def may(api_client, user: str, group: str | None, namespace: str, verb: str, resource: str,
        api_group: str = "tokenwarden.io", name: str | None = None) -> bool:
    review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=user, groups=[group] if group else None,
        resource_attributes=client.V1ResourceAttributes(namespace=namespace, verb=verb, group=api_group,
                                                        resource=resource, name=name)))
    return client.AuthorizationV1Api(api_client).create_subject_access_review(review).status.allowed


def wait_until_allowed(api_client, *args, timeout: float = 30, **kwargs) -> None:
    """RBAC objects reach the authorizer's cache (and aggregation its ClusterRoles) a moment after
    they are written: ask the API server until it agrees."""
    deadline = time.monotonic() + timeout
    while not may(api_client, *args, **kwargs):
        assert time.monotonic() < deadline, f"never allowed: {args} {kwargs}"
        time.sleep(0.2)


def refusal(call) -> str:
    """The API server's message for a refused request."""
    with pytest.raises(ApiException) as refused:
        call()
    assert refused.value.status in (400, 403, 422), refused.value.body
    return json.loads(refused.value.body)["message"]


def patch(custom, kind: str, namespace: str, name: str, spec: dict) -> dict:
    return custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], name, {"spec": spec})


def apply_rbac(api_client, namespace: str, documents: list[dict]) -> None:
    rbac = client.RbacAuthorizationV1Api(api_client)
    for document in documents:
        document = {**document, "metadata": {**document["metadata"], "namespace": namespace}}
        if document["kind"] == "Role":
            rbac.create_namespaced_role(namespace, document)
        elif document["kind"] == "RoleBinding":
            rbac.create_namespaced_role_binding(namespace, document)


def example(kind: str | None = None, name: str | None = None) -> list[dict]:
    documents = [d for d in yaml.safe_load_all((REPO / "examples" / "tenant-rbac.yaml").read_text()) if d]
    return [d for d in documents if d["kind"] != "Namespace" and kind in (None, d["kind"])
            and name in (None, d["metadata"]["name"])]


@pytest.fixture(scope="module")
def aggregated(api_client) -> Iterator[None]:
    """The chart's aggregated ClusterRoles, as rendered; the cluster's aggregation controller adds
    them to Kubernetes' admin, edit and view."""
    rbac = client.RbacAuthorizationV1Api(api_client)
    roles = render("--show-only", "templates/aggregate-roles.yaml")
    assert {r["metadata"]["name"] for r in roles} == {f"{RELEASE}-tokenwarden-edit", f"{RELEASE}-tokenwarden-view"}
    for role in roles:
        rbac.create_cluster_role(role)
    try:
        yield
    finally:
        for role in roles:
            rbac.delete_cluster_role(role["metadata"]["name"])


@pytest.fixture
def tenant(cluster, api_client, aggregated, namespace) -> client.CustomObjectsApi:
    """The tenant with Kubernetes' edit role in its namespace only (the example's RoleBinding)."""
    apply_rbac(api_client, namespace, example("RoleBinding", "team-a-edit"))
    wait_until_allowed(api_client, TENANT, TENANT_GROUP, namespace, "create", "rolebindings")
    return impersonating(cluster, TENANT, TENANT_GROUP)


def test_edit_alone_manages_the_kinds_but_grants_no_role(operator, api_client, tenant, namespace):
    view = client.RbacAuthorizationV1Api(api_client).read_cluster_role("view")
    assert any("tokenusages" in (rule.resources or []) for rule in view.rules), "the view role is aggregated too"
    create(tenant, "ServiceAccount", namespace, "agents", {})

    message = refusal(lambda: create(tenant, "ServiceToken", namespace, "root", {"roles": ["admin"]}))
    assert f"user '{TENANT}'" in message
    assert 'missing bind on roles.tokenwarden.io "admin" (to grant role admin)' in message
    assert '{apiGroups: ["tokenwarden.io"], resources: [roles], verbs: [bind], resourceNames: [admin]}' in message
    assert "use on projects.tokenwarden.io with no name (every one)" in message

    message = refusal(lambda: create(tenant, "RoleBinding", namespace, "agents-admin",
                                     {"serviceAccountName": "agents", "roles": ["admin"], "project": "shop"}))
    assert 'bind on roles.tokenwarden.io "admin"' in message and 'use on projects.tokenwarden.io "shop"' in message
    message = refusal(lambda: create(tenant, "IngestionAPIKey", namespace, "everywhere", {}))
    assert "use on projects.tokenwarden.io with no name" in message and "bind on" not in message

    # A token of an account grants nothing of its own: it gets only what bindings give the account.
    create(tenant, "ServiceToken", namespace, "agents-token", {"serviceAccountName": "agents"})


def test_the_example_lets_the_tenant_grant_writer_within_its_project(operator, api_client, tenant, namespace):
    apply_rbac(api_client, namespace, example("Role") + example("RoleBinding", "team-a-tokenwarden-grants"))
    wait_until_allowed(api_client, TENANT, TENANT_GROUP, namespace, "bind", "roles", name="writer")
    wait_until_allowed(api_client, TENANT, TENANT_GROUP, namespace, "use", "projects", name="shop")
    create(tenant, "ServiceAccount", namespace, "agents", {})

    create(tenant, "RoleBinding", namespace, "agents-writer",
           {"serviceAccountName": "agents", "roles": ["writer"], "project": "shop"})
    message = refusal(lambda: create(tenant, "RoleBinding", namespace, "elsewhere",
                                     {"serviceAccountName": "agents", "roles": ["writer"], "project": "other"}))
    assert 'missing use on projects.tokenwarden.io "other" (to grant within project other)' in message
    assert "bind on" not in message
    message = refusal(lambda: create(tenant, "RoleBinding", namespace, "unscoped",
                                     {"serviceAccountName": "agents", "roles": ["writer"]}))
    assert "use on projects.tokenwarden.io with no name" in message
    message = refusal(lambda: create(tenant, "RoleBinding", namespace, "reader",
                                     {"serviceAccountName": "agents", "roles": ["reader"], "project": "shop"}))
    assert 'missing bind on roles.tokenwarden.io "reader"' in message
    # A standalone token grants its roles in every project.
    message = refusal(lambda: create(tenant, "ServiceToken", namespace, "standalone", {"roles": ["writer"]}))
    assert "use on projects.tokenwarden.io with no name" in message

    create(tenant, "IngestionAPIKey", namespace, "shop-key", {"project": "shop"})
    message = refusal(lambda: create(tenant, "IngestionAPIKey", namespace, "other-key", {"project": "other"}))
    assert 'use on projects.tokenwarden.io "other"' in message

    # An update is checked for what it grants anew: an added role...
    message = refusal(lambda: patch(tenant, "RoleBinding", namespace, "agents-writer",
                                    {"roles": ["writer", "admin"]}))
    assert 'missing bind on roles.tokenwarden.io "admin"' in message
    message = refusal(lambda: patch(tenant, "IngestionAPIKey", namespace, "shop-key", {"project": "other"}))
    assert 'use on projects.tokenwarden.io "other"' in message

    # ...and a change that grants nothing new passes, even after the grants were taken away.
    client.RbacAuthorizationV1Api(api_client).delete_namespaced_role_binding("team-a-tokenwarden-grants", namespace)
    deadline = time.monotonic() + 30
    while may(api_client, TENANT, TENANT_GROUP, namespace, "use", "projects", name="shop"):
        assert time.monotonic() < deadline, "the grant was never taken away"
        time.sleep(0.2)
    patch(tenant, "IngestionAPIKey", namespace, "shop-key", {"description": "the shop's collector"})
    # Admission reuses an allowed answer for a few seconds (kube.access.REVIEW_CACHE_TTL): a
    # grant taken away stops counting once the answer given before has lapsed.
    deadline = time.monotonic() + 30
    for attempt in range(2, 1000):
        try:
            create(tenant, "IngestionAPIKey", namespace, f"shop-key-{attempt}", {"project": "shop"})
        except ApiException as refused:
            assert refused.status in (400, 403, 422), refused.body
            message = json.loads(refused.body)["message"]
            break
        assert time.monotonic() < deadline, "a grant taken away still counted after 30 s"
        time.sleep(0.5)
    assert 'use on projects.tokenwarden.io "shop"' in message


def test_import_needs_get_on_the_secret(operator, cluster, api_client, core, aggregated, namespace):
    """A tenant with tokenwarden's kinds but no Secrets (the chart's aggregated role bound directly)
    and get on one named Secret imports that one and no other."""
    user = "importer"
    for name in ("readable", "hidden"):
        core.create_namespaced_secret(namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, labels=IMPORTABLE), string_data={"token": "k" * 40 + name}))
    apply_rbac(api_client, namespace, [
        {"kind": "RoleBinding", "metadata": {"name": "importer-kinds"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": f"{RELEASE}-tokenwarden-edit"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]},
        {"kind": "Role", "metadata": {"name": "read-one"},
         "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["readable"], "verbs": ["get"]}]},
        {"kind": "RoleBinding", "metadata": {"name": "read-one"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-one"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]},
    ])
    wait_until_allowed(api_client, user, None, namespace, "get", "secrets", api_group="", name="readable")
    wait_until_allowed(api_client, user, None, namespace, "create", "servicetokens")
    importer = impersonating(cluster, user)

    message = refusal(lambda: create(importer, "ServiceToken", namespace, "steal", {
        "serviceAccountName": "agents", "import": {"secretRef": {"name": "hidden"}}}))
    assert f"user '{user}'" in message and 'missing get on secrets "hidden" (to import a key from Secret hidden)' in message
    assert '{apiGroups: [""], resources: [secrets], verbs: [get], resourceNames: [hidden]}' in message
    create(importer, "ServiceToken", namespace, "adopt", {
        "serviceAccountName": "agents", "import": {"secretRef": {"name": "readable"}}})
    # Pointing the import at another Secret is a new read, checked again.
    message = refusal(lambda: patch(importer, "ServiceToken", namespace, "adopt",
                                    {"import": {"secretRef": {"name": "hidden"}}}))
    assert 'get on secrets "hidden"' in message


def test_a_cluster_admin_grants_anything_unchanged(operator, custom, core, namespace):
    """The test kubeconfig's user (system:masters), as kubectl apply, Helm or a GitOps controller
    bound to cluster-admin: every grant passes by RBAC alone."""
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="legacy", labels=IMPORTABLE), string_data={"token": "k" * 40}))
    create(custom, "ServiceAccount", namespace, "agents", {})
    create(custom, "ServiceToken", namespace, "root", {"roles": ["admin"]})
    create(custom, "RoleBinding", namespace, "agents-admin", {"serviceAccountName": "agents", "roles": ["admin"]})
    create(custom, "RoleBinding", namespace, "agents-writer",
           {"serviceAccountName": "agents", "roles": ["writer"], "project": "other"})
    create(custom, "IngestionAPIKey", namespace, "everywhere", {})
    create(custom, "IngestionAPIKey", namespace, "other", {"project": "other"})
    create(custom, "ServiceToken", namespace, "imported",
           {"serviceAccountName": "agents", "import": {"secretRef": {"name": "legacy"}}})
    patch(custom, "RoleBinding", namespace, "agents-writer", {"roles": ["writer", "reader"], "project": "shop"})
    patch(custom, "ServiceToken", namespace, "root", {"roles": ["admin", "reader"]})
    wait_for(custom, "ServiceToken", namespace, "root",
             lambda o: phase_is("Active")(o) and o["status"].get("effectiveRoles") == ["admin", "reader"])


def test_the_operator_may_grant_only_the_bootstrap_roles(operator, cluster, api_client, namespace, core):
    """The chart's RBAC for the operator, rendered with a bootstrap token: it may grant exactly the
    bootstrap roles, in every project, in its own namespace; the webhook checks it as anyone."""
    docs = render("-n", namespace, "--show-only", "templates/rbac.yaml",
                  "--set", "authentication.servicetoken.bootstrap.token=" + "0123456789abcdef" * 2 + "XYZ",
                  "--set", "authentication.servicetoken.bootstrap.roles={power-user}")
    operator_docs = [d for d in docs if d["metadata"]["name"] in (f"{RELEASE}-tokenwarden-operator",
                                                                  f"{RELEASE}-tokenwarden-operator-own")]
    assert {d["kind"] for d in operator_docs} == {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    rbac = client.RbacAuthorizationV1Api(api_client)
    made = []
    try:
        for document in operator_docs:
            if document["kind"] == "ClusterRole":
                rbac.create_cluster_role(document)
                made.append(document)
            elif document["kind"] == "ClusterRoleBinding":
                rbac.create_cluster_role_binding(document)
                made.append(document)
        apply_rbac(api_client, namespace, [d for d in operator_docs if d["kind"] in ("Role", "RoleBinding")])
        account = f"system:serviceaccount:{namespace}:{RELEASE}-tokenwarden-operator"
        wait_until_allowed(api_client, account, None, namespace, "bind", "roles", name="power-user")
        as_operator = impersonating(cluster, account)
        core.create_namespaced_secret(namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name="bootstrap", labels=IMPORTABLE), string_data={"token": "b" * 40}))

        create(as_operator, "ServiceToken", namespace, "tokenwarden-bootstrap",
               {"roles": ["power-user"], "import": {"secretRef": {"name": "bootstrap"}}})
        message = refusal(lambda: create(as_operator, "ServiceToken", namespace, "more", {"roles": ["admin"]}))
        assert 'missing bind on roles.tokenwarden.io "admin"' in message
        message = refusal(lambda: patch(as_operator, "ServiceToken", namespace, "tokenwarden-bootstrap",
                                        {"roles": ["power-user", "admin"]}))
        assert 'missing bind on roles.tokenwarden.io "admin"' in message
    finally:
        for document in made:
            if document["kind"] == "ClusterRole":
                rbac.delete_cluster_role(document["metadata"]["name"])
            else:
                rbac.delete_cluster_role_binding(document["metadata"]["name"])


def test_an_audience_beyond_the_defaults_is_granted_like_a_role(operator, api_client, tenant, namespace):
    """Kubernetes' own audience would let a token log in to the cluster (where kube-apiserver
    asks the authenticator): `edit` alone may not give a token that, or any audience beyond the
    settings' defaults."""
    create(tenant, "ServiceAccount", namespace, "agents", {})
    create(tenant, "ServiceToken", namespace, "plain", {"serviceAccountName": "agents", "audiences": ["tokenwarden"]})
    for make in (
        lambda: create(tenant, "ServiceToken", namespace, "kube-login",
                       {"serviceAccountName": "agents", "audiences": [KUBE_AUDIENCE]}),
        lambda: patch(tenant, "ServiceToken", namespace, "plain", {"audiences": ["tokenwarden", KUBE_AUDIENCE]}),
    ):
        message = refusal(make)
        assert (f'missing use on audiences.tokenwarden.io "{KUBE_AUDIENCE}" '
                f'(to make a token valid for audience {KUBE_AUDIENCE})') in message
        assert "bind on" not in message and "projects" not in message

    # A cluster admin allows that one audience, by name.
    rule = {"apiGroups": ["tokenwarden.io"], "resources": ["audiences"], "verbs": ["use"],
            "resourceNames": [KUBE_AUDIENCE]}
    apply_rbac(api_client, namespace, [
        {"kind": "Role", "metadata": {"name": "kube-audience"}, "rules": [rule]},
        {"kind": "RoleBinding", "metadata": {"name": "kube-audience"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kube-audience"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": TENANT}]},
    ])
    wait_until_allowed(api_client, TENANT, TENANT_GROUP, namespace, "use", "audiences", name=KUBE_AUDIENCE)
    create(tenant, "ServiceToken", namespace, "kube-login", {"serviceAccountName": "agents", "audiences": [KUBE_AUDIENCE]})
    message = refusal(lambda: patch(tenant, "ServiceToken", namespace, "plain", {"audiences": ["vault"]}))
    assert 'missing use on audiences.tokenwarden.io "vault"' in message
