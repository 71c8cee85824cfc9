"""The chart's RBAC is no wider than the install: exactly what the code needs (chart_access.py),
in the namespaces it serves, proven by the API server's own answers; and two namespace-scoped
releases run side by side, each operator minting in its own namespace only."""
from __future__ import annotations

import base64
import re
import time
import uuid

import pytest
import yaml
from kubernetes import client

from tokenwarden import devcluster

from ..conftest import AuthenticatorProcess, OperatorProcess
from .chart_access import Values, expected_objects, needs, rendered_objects
from .kubehelpers import create, phase_is, wait_for
from .test_chart import BOOTSTRAP, CHART, helm, render, run_helm  # noqa: F401  (helm: the fixture)

RELEASE_NAMESPACE = "tokenwarden"  # render()'s
NAME = "tw-tokenwarden"            # render()'s release objects


def _set(values: Values) -> list[str]:
    args = ["--set", f"operator.replicas={values.replicas}",
            "--set", f"operator.webhook.enabled={str(values.webhook).lower()}",
            "--set", f"authenticator.enabled={str(values.authenticator).lower()}"]
    if values.namespaces:
        args += ["--set", f"operator.namespaces={{{','.join(values.namespaces)}}}"]
    return args + (BOOTSTRAP if values.bootstrap_roles else [])


INSTALLS = {
    "all namespaces": Values(),
    "named namespaces": Values(namespaces=("team-a", "team-b")),
    "with the release namespace and a bootstrap token": Values(namespaces=("team-a", RELEASE_NAMESPACE),
                                                               bootstrap_roles=("power-user",)),
    "one replica (no peering)": Values(namespaces=("team-a",), replicas=1),
    "no webhook, no authenticator": Values(webhook=False, authenticator=False),
    "all namespaces with a bootstrap token": Values(bootstrap_roles=("power-user",)),
}


@pytest.mark.parametrize("values", INSTALLS.values(), ids=INSTALLS.keys())
def test_the_chart_grants_exactly_what_the_code_needs(helm, values):
    docs = render(helm, *_set(values))
    assert rendered_objects(docs, NAME) == expected_objects(NAME, RELEASE_NAMESPACE, values)
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs
             if d["kind"] in ("Role", "ClusterRole") and d["metadata"]["name"].startswith(
                 (f"{NAME}-operator", f"{NAME}-authenticator"))}
    bindings = {(d["kind"].replace("Binding", ""), d["metadata"].get("namespace"), d["metadata"]["name"]):
                (d["roleRef"]["name"], d["subjects"]) for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")}
    for kind, namespace, name in roles:  # each bound to its own process's account, in the release namespace
        who = name.removeprefix(f"{NAME}-").split("-")[0]
        assert bindings[(kind, namespace, name)] == (name, [{"kind": "ServiceAccount", "name": f"{NAME}-{who}",
                                                             "namespace": RELEASE_NAMESPACE}])
    if values.namespaces:  # no Secret, workload or token anywhere else
        cluster_roles = [atoms for (kind, _, _), atoms in rendered_objects(docs, NAME).items() if kind == "ClusterRole"]
        assert not [a for atoms in cluster_roles for a in atoms
                    if a[2] in ("secrets", "deployments", "daemonsets", "statefulsets", "servicetokens")]


def test_a_pattern_in_namespaces_fails_unless_cluster_wide_grants_are_accepted(helm):
    refused = run_helm(helm, "template", "tw", str(CHART), "--set", "operator.namespaces={team-*}")
    assert refused.returncode != 0
    assert 'operator.namespaces ["team-*"] has a pattern, which RBAC Roles cannot follow' in refused.stderr
    assert "operator.namespaces={team-a,team-b}" in refused.stderr and "rbac.clusterWideForGlobs=true" in refused.stderr

    values = Values(namespaces=("team-*",))
    docs = render(helm, "--set", "operator.namespaces={team-*}", "--set", "rbac.clusterWideForGlobs=true")
    expected = expected_objects(NAME, RELEASE_NAMESPACE, Values())  # as for all namespaces...
    expected[("ClusterRole", None, f"{NAME}-operator")] |= next(  # ...and kopf matches namespaces
        n.atoms(NAME, values) for n in needs(values) if n.when == "namespaces")
    assert rendered_objects(docs, NAME) == expected


def test_the_install_notes_say_how_far_the_grants_reach(helm, cluster):
    def notes(*args):
        result = run_helm(helm, "install", "tw", str(CHART), "-n", "tokenwarden", "--dry-run=client",
                          "--set", "crds.enabled=false", *args,
                          kubeconfig=cluster.kubeconfig)
        assert result.returncode == 0, result.stderr
        return result.stdout

    globbed = notes("--set", "operator.namespaces={team-*}", "--set", "rbac.clusterWideForGlobs=true")
    assert "WARNING: operator.namespaces team-* is a pattern" in globbed and "in EVERY namespace" in globbed
    assert "It serves the namespaces team-a, team-b only, and holds Roles there" in notes(
        "--set", "operator.namespaces={team-a,team-b}")
    assert "WARNING" not in notes()


def test_a_bootstrap_token_outside_the_served_namespaces_fails_naming_the_fix(helm):
    refused = run_helm(helm, "template", "tw", str(CHART), "-n", "tokenwarden", *BOOTSTRAP,
                       "--set", "operator.namespaces={team-a}")
    assert refused.returncode != 0
    assert 'the bootstrap token lives in the release namespace "tokenwarden"' in refused.stderr
    assert 'add "tokenwarden" to operator.namespaces' in refused.stderr


def _apply_rbac(api_client: client.ApiClient, docs: list[dict]) -> list[dict]:
    """Create the rendered ServiceAccounts, roles and bindings; the ones created."""
    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    made = []
    for doc in docs:
        namespace = doc["metadata"].get("namespace")
        create_call = {"ServiceAccount": lambda d: core.create_namespaced_service_account(namespace, d),
                       "Role": lambda d: rbac.create_namespaced_role(namespace, d),
                       "RoleBinding": lambda d: rbac.create_namespaced_role_binding(namespace, d),
                       "ClusterRole": rbac.create_cluster_role,
                       "ClusterRoleBinding": rbac.create_cluster_role_binding}.get(doc["kind"])
        if create_call is not None:
            create_call(doc)
            made.append(doc)
    return made


def _wait_until_counted(api_client: client.ApiClient, docs: list[dict], release: str) -> None:
    """RBAC objects reach the authorizer's cache a moment after they are written: ask until each
    role's first rule counts for its account."""
    for doc in docs:
        if doc["kind"] not in ("Role", "ClusterRole") or not doc["metadata"]["name"].endswith(
                ("-operator", "-authenticator", "-own")):
            continue
        rule, account = doc["rules"][0], f"{release}/{doc['metadata']['name'].removesuffix('-own')}"
        names = rule.get("resourceNames") or [None]
        deadline = time.monotonic() + 30
        while not _allowed(api_client, account, doc["metadata"].get("namespace"), rule["apiGroups"][0],
                           rule["resources"][0], rule["verbs"][0], names[0]):
            assert time.monotonic() < deadline, f"{doc['kind']} {doc['metadata']['name']} never counted"
            time.sleep(0.2)


def _delete(api_client: client.ApiClient, docs: list[dict]) -> None:
    rbac = client.RbacAuthorizationV1Api(api_client)
    for doc in docs:
        if doc["kind"] == "ClusterRole":
            rbac.delete_cluster_role(doc["metadata"]["name"])
        elif doc["kind"] == "ClusterRoleBinding":
            rbac.delete_cluster_role_binding(doc["metadata"]["name"])


def _allowed(api_client: client.ApiClient, account: str, namespace: str | None, group: str, resource: str,
             verb: str, name: str | None) -> bool:
    """The API server's answer (a SubjectAccessReview) for a pod running as ``account``
    (namespace/name), as `kubectl auth can-i --as=system:serviceaccount:…` asks it."""
    account_namespace, account_name = account.split("/")
    resource, _, subresource = resource.partition("/")
    review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=f"system:serviceaccount:{account_namespace}:{account_name}",
        groups=["system:serviceaccounts", f"system:serviceaccounts:{account_namespace}", "system:authenticated"],
        resource_attributes=client.V1ResourceAttributes(
            namespace=namespace or "", group=group, resource=resource, subresource=subresource or None,
            verb=verb, name=name)))
    return client.AuthorizationV1Api(api_client).create_subject_access_review(review).status.allowed


SCOPES = {"named namespaces": True, "all namespaces": False}


@pytest.mark.parametrize("scoped", SCOPES.values(), ids=SCOPES.keys())
def test_the_api_server_allows_what_the_code_needs_where_it_serves_and_nothing_elsewhere(helm, api_client, core,
                                                                                      scoped):
    suffix = uuid.uuid4().hex[:6]
    release, served, unlisted = f"rbac-{suffix}", [f"served-a-{suffix}", f"served-b-{suffix}"], f"unlisted-{suffix}"
    # Several replicas (peering), and a bootstrap token, whose namespace (the release's) a scoped install must serve.
    values = Values(namespaces=(*served, release) if scoped else (), replicas=2, bootstrap_roles=("power-user",))
    name = f"rbac-{suffix}-tokenwarden"
    for namespace in (release, *served, unlisted):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    result = run_helm(helm, "template", f"rbac-{suffix}", str(CHART), "-n", release, *_set(values))
    assert result.returncode == 0, result.stderr
    made = _apply_rbac(api_client, [d for d in yaml.safe_load_all(result.stdout) if d])
    try:
        _wait_until_counted(api_client, made, release)
        asked = 0
        for need in needs(values):
            account = f"{release}/{name}-{need.who}"
            for who, group, resource, verb, resource_name in sorted(need.atoms(name, values), key=str):
                def allowed(namespace, resource_name=resource_name):
                    return _allowed(api_client, account, namespace, group, resource, verb, resource_name)

                what = f"{who} {verb} {group}/{resource} {resource_name or ''} ({need.why})"
                asked += 1
                if need.where == "cluster":
                    assert allowed(None), what
                elif need.where == "own":
                    assert allowed(release), f"{what} in the release namespace"
                    assert not (scoped and allowed(unlisted)), f"{what} in an unlisted namespace"
                else:
                    for namespace in values.namespaces or (*served, unlisted):
                        assert allowed(namespace), f"{what} in {namespace}"
                    assert allowed(unlisted) is not scoped, f"{what} in an unlisted namespace"
                    assert allowed(None) is not scoped, f"{what} cluster-wide"
        assert asked > 60
        # Never a Secret by another name for the authenticator, wherever; and in a namespace-scoped
        # install, nothing at all outside its namespaces for either.
        authenticator = f"{release}/{name}-authenticator"
        for namespace in (release, served[0], unlisted):
            assert not _allowed(api_client, authenticator, namespace, "", "secrets", "get", "someone-elses")
            assert not _allowed(api_client, authenticator, namespace, "", "secrets", "list", None)
        if scoped:
            for who in ("operator", "authenticator"):
                for group, resource in (("", "secrets"), ("", "configmaps"), ("apps", "deployments"),
                                        ("tokenwarden.io", "servicetokens")):
                    for verb in ("get", "list", "watch", "create", "patch", "delete"):
                        assert not _allowed(api_client, f"{release}/{name}-{who}", unlisted, group, resource,
                                            verb, None), f"{who} {verb} {resource} in {unlisted}"
    finally:
        _delete(api_client, made)
        for namespace in (release, *served, unlisted):
            core.delete_namespace(namespace)


def _account_kubeconfig(core: client.CoreV1Api, admin_kubeconfig, namespace: str, account: str, path):
    """A kubeconfig that authenticates as a ServiceAccount (a bound token), as a pod running under
    it does: every call is then decided by that account's RBAC."""
    token = core.create_namespaced_service_account_token(account, namespace, client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))).status.token
    config = yaml.safe_load(admin_kubeconfig.read_text())
    config["users"] = [{"name": account, "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = account
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def test_two_namespace_scoped_releases_side_by_side_each_mint_their_own_tokens(helm, cluster, core, custom,
                                                                               tmp_path):
    """Two releases, each serving its own namespace, installed next to each other (the CRDs are
    installed once: crds.enabled=false for the others); each operator runs with its release's
    settings under its release's ServiceAccount, and mints the tokens of its namespace only."""
    suffix = uuid.uuid4().hex[:6]
    releases = {f"team-a-{suffix}": "tw-a", f"team-b-{suffix}": "tw-b"}
    processes, installed = [], []
    try:
        for namespace, release in releases.items():
            result = run_helm(helm, "install", release, str(CHART), "-n", namespace, "--create-namespace",
                              "--set", "crds.enabled=false", "--set", "operator.webhook.enabled=false",
                              "--set", f"operator.namespaces={{{namespace}}}", kubeconfig=cluster.kubeconfig)
            assert result.returncode == 0, result.stderr
            installed.append((namespace, release))
            assert f"It serves the namespaces {namespace} only" in result.stdout
        # A release of a name the other namespace uses already would take over its cluster-wide objects.
        (first, first_release), (second, _) = releases.items()
        same_name = run_helm(helm, "install", first_release, str(CHART), "-n", second, "--set", "crds.enabled=false",
                             "--set", "operator.webhook.enabled=false", "--set", f"operator.namespaces={{{second}}}",
                             kubeconfig=cluster.kubeconfig)
        assert same_name.returncode != 0
        assert f'ClusterRole {first_release}-tokenwarden-operator belongs to the release "{first_release}" in ' \
               f'namespace "{first}"' in same_name.stderr
        assert "install it under another release name, or set fullnameOverride" in same_name.stderr

        for namespace, release in releases.items():
            settings = core.read_namespaced_config_map(f"{release}-tokenwarden", namespace).data["settings.yaml"]
            for component in ("operator", "authenticator"):
                workdir = tmp_path / release / component
                workdir.mkdir(parents=True)
                kubeconfig = _account_kubeconfig(core, cluster.kubeconfig, namespace,
                                                 f"{release}-tokenwarden-{component}", workdir / "kubeconfig")
                if component == "operator":
                    process = OperatorProcess(kubeconfig, workdir, webhook=False, namespaces=[namespace],
                                              home_namespace=None)
                    process.config.write_text(settings)
                    process.start()
                else:  # ready once it has listed and watches its kinds, and read the import key
                    process = AuthenticatorProcess(cluster, workdir, port=devcluster.free_port(),
                                                   tls=cluster.authn_tls, kubeconfig=kubeconfig, settings=settings,
                                                   extra=(f"--namespace={namespace}",))
                processes.append(process)
        for namespace in releases:
            create(custom, "ServiceToken", namespace, "agent", {"roles": ["writer"]})
        tokens = {}
        for namespace in releases:
            token = wait_for(custom, "ServiceToken", namespace, "agent", phase_is("Active"))
            tokens[namespace] = base64.b64decode(
                core.read_namespaced_secret(token["status"]["secretName"], namespace).data["token"]).decode()
        namespaces = list(releases)
        operators, authenticators = processes[0::2], processes[1::2]
        for operator, authenticator, namespace, other in zip(operators, authenticators, namespaces,
                                                              reversed(namespaces)):
            log = operator.log()
            # Its log shows the token it minted (kopf's debug lines carry the body), and nothing of the other.
            assert f"'name': 'agent', 'namespace': '{namespace}'" in log and other not in log
            for process in (operator, authenticator):  # nothing it does was refused
                assert not re.search(r"Forbidden|forbidden|Not enough permissions|\b403\b", process.log()), \
                    process.log()[-3000:]
            # Each authenticator knows its own namespace's token, and not the other's.
            assert authenticator.get("/verify", {"Authorization": f"Bearer {tokens[namespace]}"}).status_code == 200
            assert authenticator.get("/verify", {"Authorization": f"Bearer {tokens[other]}"}).status_code == 401
    finally:
        for process in processes:
            process.stop()
        for namespace, release in installed:
            run_helm(helm, "uninstall", release, "-n", namespace, kubeconfig=cluster.kubeconfig)
        for namespace in releases:
            core.delete_namespace(namespace)
