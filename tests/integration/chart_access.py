"""What the operator and the authenticator do on the API server, as the code does it (kube/, kopf's
handlers and watches, authn/), and so what the chart's RBAC must grant them: every grant, where
it applies and why. tests/integration/test_chart_rbac.py proves the chart grants exactly this
and that the API server allows it where it should and nowhere else.

Where a grant applies:
- ``cluster``: it has no namespace (a ClusterRole);
- ``served``: in every namespace the release serves (a Role in each named one; the ClusterRole
  when it serves all of them);
- ``own``: in the release namespace, for the release's own objects (a Role there).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product

KINDS = ("serviceaccounts", "rolebindings", "servicetokens", "ingestionapikeys")
BOOTSTRAP_ROLES = "<the bootstrap token's roles>"  # in Need.names: each of Values.bootstrap_roles


@dataclass(frozen=True)
class Values:
    """The values that change what the chart grants."""

    namespaces: tuple[str, ...] = ()
    replicas: int = 2  # the chart's default
    webhook: bool = True
    bootstrap_roles: tuple[str, ...] = ()
    authenticator: bool = True


@dataclass(frozen=True)
class Need:
    who: str                       # operator | authenticator
    where: str                     # cluster | served | own
    group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str
    names: tuple[str, ...] = ()    # resourceNames; "{name}" is the release's object-name prefix
    when: str = ""                 # "", webhook, namespaces, peering, bootstrap, authenticator: the values it needs

    def applies(self, values: Values) -> bool:
        return {"": True, "webhook": values.webhook, "namespaces": bool(values.namespaces),
                "peering": values.replicas > 1, "bootstrap": bool(values.bootstrap_roles),
                "authenticator": values.authenticator}[self.when] and (self.who == "operator" or values.authenticator)

    def resource_names(self, name: str, values: Values) -> list[str]:
        """The resourceNames as rendered for release objects named ``name``-…; none: any name."""
        found: list[str] = []
        for pattern in self.names:
            found += list(values.bootstrap_roles) if pattern == BOOTSTRAP_ROLES else [pattern.format(name=name)]
        return found

    def atoms(self, name: str, values: Values) -> set[tuple]:
        """(who, group, resource, verb, resourceName or None), one per thing allowed."""
        return {(self.who, self.group, resource, verb, resource_name)
                for resource, verb, resource_name in product(
                    self.resources, self.verbs, self.resource_names(name, values) or [None])}


NEEDS = [
    # The operator.
    Need("operator", "cluster", "apiextensions.k8s.io", ("customresourcedefinitions",), ("list", "watch"),
         "kopf notices the kinds, and their CRDs coming and going"),
    Need("operator", "cluster", "authorization.k8s.io", ("subjectaccessreviews",), ("create",),
         "admission: may the requester grant what the object grants (bind, use, get on an imported Secret)",
         when="webhook"),
    Need("operator", "cluster", "admissionregistration.k8s.io", ("validatingwebhookconfigurations",),
         ("get", "patch"), "the webhook's CA bundle, injected into the release's own configuration only",
         names=("{name}",), when="webhook"),
    Need("operator", "cluster", "", ("namespaces",), ("list", "watch"),
         "kopf finds the namespaces that match operator.namespaces, and one created later", when="namespaces"),
    Need("operator", "cluster", "kopf.dev", ("clusterkopfpeerings",), ("list", "watch", "create"),
         "kopf watches the peers; the operator creates the release's peering object at start", when="peering"),
    Need("operator", "cluster", "kopf.dev", ("clusterkopfpeerings",), ("patch",),
         "kopf keeps this replica's record, in the release's peering object only", names=("{name}",),
         when="peering"),
    Need("operator", "served", "tokenwarden.io", KINDS, ("get", "list", "watch", "patch"),
         "watch the four kinds; patch for kopf's annotations, the bootstrap token's spec, a reported leak "
         "(tokenwarden.io/leaked), and to remove the finalizer older versions put"),
    Need("operator", "served", "tokenwarden.io", ("servicetokens",), ("create",),
         "the bootstrap token; admission is probed with a dry-run create in the first served namespace"),
    Need("operator", "served", "tokenwarden.io", ("servicetokens", "ingestionapikeys"), ("delete",),
         "bootstrap token revoked; expired tokens and keys deleted after the retention"),
    Need("operator", "served", "tokenwarden.io", tuple(f"{k}/status" for k in KINDS), ("patch",),
         "status only, never spec"),
    Need("operator", "served", "tokenwarden.io", ("tokenusages",), ("list", "watch"),
         "last use recorded by the authenticator, copied into each credential's lastUsedAt"),
    Need("operator", "served", "", ("secrets",), ("get", "list", "watch", "create", "patch", "delete"),
         "token Secrets: mint, read back after a crash, rotate, revoke, expire, collect orphans; "
         "imported keys' source Secrets; the bootstrap Secret"),
    Need("operator", "served", "", ("events",), ("create",),
         "events on tokens, accounts, the bootstrap Secret (kopf posts)"),
    Need("operator", "served", "", ("serviceaccounts",), ("get", "list", "watch"),
         "workload identities: the Kubernetes ServiceAccounts that accounts list, read by name, followed by "
         "their metadata"),
    Need("operator", "served", "apps", ("deployments", "daemonsets", "statefulsets"), ("patch",),
         "rollout restart of rotation targets (a patch; a missing target is its 404)"),
    Need("operator", "own", "", ("secrets",), ("create",),
         "the import key Secret, created when missing (create cannot be limited to a name)"),
    Need("operator", "own", "", ("secrets",), ("get",),
         "the import key, read by name; the bootstrap Secret, read whether or not the values have one",
         names=("{name}-import-key", "{name}-bootstrap")),
    Need("operator", "own", "tokenwarden.io", ("servicetokens",), ("get",),
         "the bootstrap token, looked for to revoke it when the values have none", names=("tokenwarden-bootstrap",)),
    Need("operator", "own", "tokenwarden.io", ("roles",), ("bind",),
         "the bootstrap token grants its roles (exactly those of the values); the webhook checks the operator too",
         names=(BOOTSTRAP_ROLES,), when="bootstrap"),
    Need("operator", "own", "tokenwarden.io", ("projects",), ("use",),
         "the bootstrap token is valid in every project", when="bootstrap"),
    Need("operator", "own", "", ("secrets",), ("get", "update"),
         "the webhook's CA and serving certificate, made at run time and renewed with a conditional replace",
         names=("{name}-webhook-ca", "{name}-webhook-tls"), when="webhook"),
    Need("operator", "own", "", ("secrets",), ("get", "watch"),
         "every replica serves the webhook's certificate from its Secret, followed through the API",
         names=("{name}-webhook-tls",), when="webhook"),
    Need("operator", "own", "", ("secrets",), ("get", "update"),
         "the authenticator's CA and serving certificate, made at run time and renewed",
         names=("{name}-authenticator-ca", "{name}-authenticator-tls"), when="authenticator"),
    Need("operator", "own", "", ("configmaps",), ("create",),
         "the authenticator's published CA bundle (create cannot be limited to a name)", when="authenticator"),
    Need("operator", "own", "", ("configmaps",), ("get", "update"),
         "the authenticator's published CA bundle, kept current", names=("{name}-authenticator-ca",),
         when="authenticator"),
    # The authenticator.
    Need("authenticator", "cluster", "authentication.k8s.io", ("tokenreviews",), ("create",),
         "workload identity: kube-apiserver checks a Kubernetes service-account token sent to /verify"),
    Need("authenticator", "served", "tokenwarden.io", ("serviceaccounts", "servicetokens", "ingestionapikeys"),
         ("list", "watch"), "the hash index: a startup listing, then watches"),
    Need("authenticator", "served", "tokenwarden.io", ("rolebindings",), ("list", "watch"),
         "roles from the bindings as they are now: one deleted or being deleted grants nothing, operator or not"),
    Need("authenticator", "served", "tokenwarden.io", ("tokenusages",), ("get", "create"),
         "last use: read at start, created in a namespace where it is missing; it authorises nothing"),
    Need("authenticator", "served", "tokenwarden.io", ("tokenusages/status",), ("patch",),
         "last use, in batches; never a token's status, which decides what a token may do"),
    Need("authenticator", "own", "", ("secrets",), ("get", "watch"),
         "the import key, read and watched by name: imported keys are found by their HMAC",
         names=("{name}-import-key",)),
]


def needs(values: Values) -> list[Need]:
    return [need for need in NEEDS if need.applies(values)]


def expected_objects(name: str, release_namespace: str, values: Values) -> dict[tuple, set[tuple]]:
    """What each of the chart's roles should allow: (kind, namespace, name) → atoms. Named
    namespaces get Roles with the served grants; otherwise the ClusterRole holds them."""
    objects: dict[tuple, set[tuple]] = {}
    for need in needs(values):
        role = f"{name}-{need.who}"
        atoms = need.atoms(name, values)
        if need.where == "cluster" or (need.where == "served" and not values.namespaces):
            objects.setdefault(("ClusterRole", None, role), set()).update(atoms)
        elif need.where == "served":
            for namespace in values.namespaces:
                objects.setdefault(("Role", namespace, role), set()).update(atoms)
        else:
            objects.setdefault(("Role", release_namespace, f"{role}-own"), set()).update(atoms)
    return objects


def rendered_objects(docs: list[dict], name: str) -> dict[tuple, set[tuple]]:
    """The same, read from the chart's rendered Roles and ClusterRoles of the two processes."""
    objects: dict[tuple, set[tuple]] = {}
    for doc in docs:
        meta = doc["metadata"]
        if doc["kind"] not in ("Role", "ClusterRole") or not meta["name"].startswith(
                (f"{name}-operator", f"{name}-authenticator")):
            continue
        who = meta["name"][len(name) + 1:].split("-")[0]
        atoms = objects.setdefault((doc["kind"], meta.get("namespace"), meta["name"]), set())
        for rule in doc["rules"]:
            atoms.update((who, group, resource, verb, resource_name)
                         for group, resource, verb, resource_name in product(
                             rule["apiGroups"], rule["resources"], rule["verbs"], rule.get("resourceNames") or [None]))
    return objects
