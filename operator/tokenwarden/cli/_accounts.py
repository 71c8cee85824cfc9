"""`service-account` and `role-binding`: the identities that own tokens, and the roles they get."""
from __future__ import annotations

import click
from kubernetes.client.rest import ApiException
from pydantic import BaseModel, ValidationError

from tokenwarden.api import RoleBindingSpec, ServiceAccountSpec, WorkloadIdentity, describe_validation_error
from tokenwarden.cli._kubeopts import Kube, complete_names, kube_options, require_name
from tokenwarden.cli._output import OUTPUT, done, print_data, print_table, roles_cell
from tokenwarden.kube._resources import ROLE_BINDINGS, SERVICE_ACCOUNTS


def split_roles(text: str | None) -> list[str] | None:
    """``a,b`` → ``["a", "b"]``; None when not given; a usage error when it names no role."""
    if text is None:
        return None
    roles = [role.strip() for role in text.split(",") if role.strip()]
    if not roles:
        raise click.BadParameter("give at least one role, comma-separated, e.g. reader,writer",
                                 param_hint="--roles")
    return roles


def _checked(model: type[BaseModel], spec: dict) -> dict:
    """``spec`` as the operator and the webhook will parse it, or a usage error saying what is wrong."""
    try:
        model.model_validate(spec)
    except ValidationError as exc:
        raise click.UsageError(describe_validation_error(exc)) from None
    return spec


def _ready(obj: dict) -> tuple[str, str]:
    """The Ready condition's status and message ("", "" before the operator has seen the object)."""
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") or "", condition.get("message") or ""
    return "", ""


def _existing(kube: Kube, noun: str, name: str, call) -> object:
    """Run ``call()``; a 404 becomes an error naming the object and the namespace."""
    try:
        return call()
    except ApiException as exc:
        if exc.status == 404:
            raise click.ClickException(f"no {noun} {name!r} in namespace {kube.namespace!r} "
                                       f"(tokenwarden {noun.replace(' ', '-')} list -n {kube.namespace} "
                                       "shows what there is)") from None
        raise


# -- service-account ------------------------------------------------------------

def workload_identities(names: tuple[str, ...], namespace: str) -> list[dict] | None:
    """``--workload-identity`` values as ``spec.workloadIdentities``, or a usage error that says
    what to give instead (a bare Kubernetes ServiceAccount name of the account's namespace)."""
    if not names:
        return None
    hint = "--workload-identity"
    seen = []
    for name in names:
        parts = name.split(":")
        if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
            other, name = parts[2], parts[3]
        elif name.count("/") == 1:
            other, name = name.split("/")
        else:
            other = namespace
        if other != namespace:
            raise click.BadParameter(
                f"the Kubernetes ServiceAccount {other}/{name} is in namespace {other!r}, not {namespace!r}: "
                f"an account binds ServiceAccounts of its own namespace only; create the account there "
                f"(-n {other})", param_hint=hint)
        try:
            WorkloadIdentity.model_validate({"serviceAccountName": name})
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise click.BadParameter(f"{problem} (the name of a Kubernetes ServiceAccount)", param_hint=hint) from None
        if name in seen:
            raise click.BadParameter(f"{name!r} is given more than once: name each Kubernetes ServiceAccount once",
                                     param_hint=hint)
        seen.append(name)
    return [{"serviceAccountName": name} for name in seen]


def _warn_missing_workloads(kube: Kube, identities: list[dict]) -> None:
    """Say which named Kubernetes ServiceAccounts do not exist yet (they bind once they do);
    silent when the caller may not read ServiceAccounts."""
    for identity in identities:
        name = identity["serviceAccountName"]
        try:
            kube.core.read_namespaced_service_account(name, kube.namespace)
        except ApiException as exc:
            if exc.status != 404:
                return
            click.echo(f"Warning: no Kubernetes ServiceAccount {name!r} in namespace {kube.namespace!r} yet: its "
                       f"pods authenticate once it exists (kubectl create serviceaccount {name} -n {kube.namespace})",
                       err=True)


def describe_account(obj: dict) -> dict:
    """A ServiceAccount as ``list`` prints it (json and yaml keys in this order)."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ready, message = _ready(obj)
    return {"name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"],
            "description": spec.get("description"), "disabled": bool(spec.get("disabled")),
            "tokens": status.get("tokenCount", 0),
            "workloadIdentities": [w["serviceAccountName"] for w in spec.get("workloadIdentities") or []],
            "workloadIdentitiesBound": status.get("workloadIdentities", 0),
            "lastUsedAt": status.get("lastUsedAt"), "ready": ready, "message": message}


def workloads_cell(item: dict) -> str:
    """``[a b]``, and how many are bound when not all of them are (a ServiceAccount missing)."""
    names = item["workloadIdentities"]
    cell = roles_cell(names)
    if names and item["workloadIdentitiesBound"] < len(names):
        cell += f" ({item['workloadIdentitiesBound']} bound)"
    return cell


@click.group("service-account")
def service_account() -> None:
    """Manage service accounts.

    A service account is an identity that owns tokens and receives roles through bindings.

    \b
    Examples:
      tokenwarden service-account create profiler --description "profiling agents"
      tokenwarden service-account create collector --workload-identity otel-collector
      tokenwarden service-account list
      tokenwarden service-account disable profiler
      tokenwarden service-account delete profiler
    """


@service_account.command("create")
@click.argument("name")
@click.option("--description", help="What the account is for.")
@click.option("--disabled", is_flag=True, help="Create it disabled (its tokens fail verification).")
@click.option("--workload-identity", "workloads", multiple=True, metavar="K8S_SA",
              help="A Kubernetes ServiceAccount of the same namespace whose pods authenticate as this account "
                   "with a projected service-account token (audience tokenwarden), with nothing minted. "
                   "Repeat it for several.")
@kube_options
def service_account_create(kube: Kube, name: str, description: str | None, disabled: bool,
                           workloads: tuple[str, ...]) -> None:
    """Create a service account.

    \b
    Examples:
      $ tokenwarden service-account create profiler --description "profiling agents"
      ✅ Service account created: profiler
      $ tokenwarden service-account create profiler --workload-identity profiling-agent
      ✅ Service account created: profiler (workload identities: profiling-agent)
    """
    require_name(name, "NAME")
    identities = workload_identities(workloads, kube.namespace)
    spec = _checked(ServiceAccountSpec, {k: v for k, v in {"description": description, "disabled": disabled,
                                                           "workloadIdentities": identities}.items() if v})
    kube.create(SERVICE_ACCOUNTS, name, spec)
    if identities:
        done(f"Service account created: {name} (workload identities: "
             f"{', '.join(i['serviceAccountName'] for i in identities)})")
        _warn_missing_workloads(kube, identities)
    else:
        done(f"Service account created: {name}")


@service_account.command("list")
@OUTPUT
@kube_options
def service_account_list(kube: Kube, output: str) -> None:
    """List service accounts: name, disabled, number of tokens, bound workloads, ready, description.

    WORKLOADS names the Kubernetes ServiceAccounts whose pods authenticate as the
    account, with how many are bound when one of them does not exist.

    \b
    Examples:
      tokenwarden service-account list
      tokenwarden service-account list -o json
    """
    items = [describe_account(obj) for obj in kube.list(SERVICE_ACCOUNTS)]
    if output != "table":
        print_data(items, output)
        return
    print_table(["NAME", "DISABLED", "TOKENS", "WORKLOADS", "READY", "DESCRIPTION"],
                [[i["name"], str(i["disabled"]).lower(), i["tokens"], workloads_cell(i), i["ready"],
                  i["description"] or "-"] for i in items], status_column="READY")


@service_account.command("delete")
@click.argument("name", shell_complete=complete_names(SERVICE_ACCOUNTS))
@kube_options
def service_account_delete(kube: Kube, name: str) -> None:
    """Delete a service account: its tokens are revoked.

    \b
    Example:
      tokenwarden service-account delete profiler
    """
    _existing(kube, "service account", name, lambda: kube.delete(SERVICE_ACCOUNTS, name))
    done(f"Service account deleted: {name}")


def _set_disabled(kube: Kube, name: str, disabled: bool) -> None:
    _existing(kube, "service account", name,
              lambda: kube.patch(SERVICE_ACCOUNTS, name, {"spec": {"disabled": disabled}}))
    done(f"Service account {'disabled' if disabled else 'enabled'}: {name}")


@service_account.command("disable")
@click.argument("name", shell_complete=complete_names(SERVICE_ACCOUNTS))
@kube_options
def service_account_disable(kube: Kube, name: str) -> None:
    """Disable an account: its tokens fail verification but are kept.

    \b
    Example:
      tokenwarden service-account disable profiler
    """
    _set_disabled(kube, name, True)


@service_account.command("enable")
@click.argument("name", shell_complete=complete_names(SERVICE_ACCOUNTS))
@kube_options
def service_account_enable(kube: Kube, name: str) -> None:
    """Enable a disabled account again: its tokens verify again.

    \b
    Example:
      tokenwarden service-account enable profiler
    """
    _set_disabled(kube, name, False)


# -- role-binding ---------------------------------------------------------------

@click.group("role-binding")
def role_binding() -> None:
    """Manage role bindings.

    A role binding grants roles from the role catalog to a service account,
    optionally only within one project.

    \b
    Examples:
      tokenwarden role-binding create profiler-writer --service-account profiler --roles profile-writer
      tokenwarden role-binding create shop-reader --service-account ci --roles reader --project shop
      tokenwarden role-binding list
      tokenwarden role-binding delete shop-reader
    """


@role_binding.command("create")
@click.argument("name")
@click.option("--service-account", required=True, help="The service account that gets the roles.")
@click.option("--roles", required=True, help="Comma-separated roles from the catalog, e.g. reader,writer.")
@click.option("--project", help="Grant the roles only within this project.")
@kube_options
def role_binding_create(kube: Kube, name: str, service_account: str, roles: str, project: str | None) -> None:
    """Create a role binding.

    \b
    Example:
      $ tokenwarden role-binding create profiler-writer --service-account profiler --roles profile-writer
      ✅ Role binding created: profiler-writer
    """
    require_name(name, "NAME")
    spec = {"serviceAccountName": service_account, "roles": split_roles(roles)}
    if project:
        spec["project"] = project
    kube.create(ROLE_BINDINGS, name, _checked(RoleBindingSpec, spec))
    done(f"Role binding created: {name}")


@role_binding.command("list")
@OUTPUT
@kube_options
def role_binding_list(kube: Kube, output: str) -> None:
    """List role bindings: name, service account, roles, project, ready.

    \b
    Examples:
      tokenwarden role-binding list
      tokenwarden role-binding list -o yaml
    """
    items = []
    for obj in kube.list(ROLE_BINDINGS):
        spec = obj.get("spec") or {}
        ready, message = _ready(obj)
        items.append({"name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"],
                      "serviceAccount": spec.get("serviceAccountName"), "roles": spec.get("roles") or [],
                      "project": spec.get("project"), "ready": ready, "message": message})
    if output != "table":
        print_data(items, output)
        return
    print_table(["NAME", "SERVICE ACCOUNT", "ROLES", "PROJECT", "READY"],
                [[i["name"], i["serviceAccount"], roles_cell(i["roles"]), i["project"], i["ready"]] for i in items],
                status_column="READY")


@role_binding.command("delete")
@click.argument("name", shell_complete=complete_names(ROLE_BINDINGS))
@kube_options
def role_binding_delete(kube: Kube, name: str) -> None:
    """Delete a role binding: its roles leave the account's tokens.

    \b
    Example:
      tokenwarden role-binding delete shop-reader
    """
    _existing(kube, "role binding", name, lambda: kube.delete(ROLE_BINDINGS, name))
    done(f"Role binding deleted: {name}")
