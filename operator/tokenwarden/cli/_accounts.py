"""`service-account` and `role-binding`: the identities that own tokens, and the roles they get."""
from __future__ import annotations

import click
from kubernetes.client.rest import ApiException
from pydantic import BaseModel, ValidationError

from tokenwarden.api import RoleBindingSpec, ServiceAccountSpec, WorkloadIdentity, describe_validation_error
from tokenwarden.cli._describe import describe_command
from tokenwarden.cli._kubeopts import Kube, kube_options, require_name
from tokenwarden.cli._output import CHANGE_OUTPUT, decorated, done, roles_cell
from tokenwarden.cli._views import (DRY_RUN, View, get_command, list_command, name_argument, print_change,
                                    ready_condition, show_dry_run)
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
    condition = ready_condition(obj)
    return condition.get("status") or "", condition.get("message") or ""


def _print_created(view: View, obj: dict, output: str | None, line: str) -> None:
    print_change(view.resource, obj["metadata"]["name"], view.item(obj), output, decorated(line))


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
    return {"name": obj["metadata"]["name"], "namespace": obj["metadata"].get("namespace"),
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


def _account_row(obj: dict) -> list:
    item = describe_account(obj)
    return [item["name"], str(item["disabled"]).lower(), item["tokens"], workloads_cell(item), item["ready"],
            item["description"] or "-"]


SERVICE_ACCOUNT_VIEW = View(SERVICE_ACCOUNTS, "service-account", "service account", describe_account,
                            ["NAME", "DISABLED", "TOKENS", "WORKLOADS", "READY", "DESCRIPTION"], _account_row,
                            ["LAST USED", "MESSAGE"],
                            lambda obj: [(obj.get("status") or {}).get("lastUsedAt"), _ready(obj)[1]],
                            status_column="READY")


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
@DRY_RUN
@CHANGE_OUTPUT
@kube_options
def service_account_create(kube: Kube, name: str, description: str | None, disabled: bool,
                           workloads: tuple[str, ...], dry_run: str, output: str | None) -> None:
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
    if dry_run != "none":
        show_dry_run(kube, SERVICE_ACCOUNTS, name, spec, dry_run, output)
        return
    created = kube.create(SERVICE_ACCOUNTS, name, spec)
    bound = (f" (workload identities: {', '.join(i['serviceAccountName'] for i in identities)})"
             if identities else "")
    _print_created(SERVICE_ACCOUNT_VIEW, created, output, f"Service account created: {name}{bound}")
    if identities:
        _warn_missing_workloads(kube, identities)


service_account.add_command(list_command(SERVICE_ACCOUNT_VIEW, """List service accounts: name, disabled, number
    of tokens, bound workloads, ready, description.

    WORKLOADS names the Kubernetes ServiceAccounts whose pods authenticate as the
    account, with how many are bound when one of them does not exist. -o wide adds
    when a token of the account was last used and the Ready message; -A lists every
    namespace you may list.

    \b
    Examples:
      tokenwarden service-account list
      tokenwarden service-account list -o json
      tokenwarden service-account list -A
    """))
service_account.add_command(get_command(SERVICE_ACCOUNT_VIEW))
service_account.add_command(describe_command(SERVICE_ACCOUNT_VIEW))


@service_account.command("delete")
@name_argument(SERVICE_ACCOUNT_VIEW)
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
@name_argument(SERVICE_ACCOUNT_VIEW)
@kube_options
def service_account_disable(kube: Kube, name: str) -> None:
    """Disable an account: its tokens fail verification but are kept.

    \b
    Example:
      tokenwarden service-account disable profiler
    """
    _set_disabled(kube, name, True)


@service_account.command("enable")
@name_argument(SERVICE_ACCOUNT_VIEW)
@kube_options
def service_account_enable(kube: Kube, name: str) -> None:
    """Enable a disabled account again: its tokens verify again.

    \b
    Example:
      tokenwarden service-account enable profiler
    """
    _set_disabled(kube, name, False)


# -- role-binding ---------------------------------------------------------------

def describe_binding(obj: dict) -> dict:
    """A RoleBinding as ``list -o json|yaml`` prints it."""
    spec = obj.get("spec") or {}
    ready, message = _ready(obj)
    return {"name": obj["metadata"]["name"], "namespace": obj["metadata"].get("namespace"),
            "serviceAccount": spec.get("serviceAccountName"), "roles": spec.get("roles") or [],
            "project": spec.get("project"), "ready": ready, "message": message}


def _binding_row(obj: dict) -> list:
    item = describe_binding(obj)
    return [item["name"], item["serviceAccount"], roles_cell(item["roles"]), item["project"], item["ready"]]


ROLE_BINDING_VIEW = View(ROLE_BINDINGS, "role-binding", "role binding", describe_binding,
                         ["NAME", "SERVICE ACCOUNT", "ROLES", "PROJECT", "READY"], _binding_row,
                         ["MESSAGE"], lambda obj: [_ready(obj)[1]], status_column="READY")


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
@DRY_RUN
@CHANGE_OUTPUT
@kube_options
def role_binding_create(kube: Kube, name: str, service_account: str, roles: str, project: str | None,
                        dry_run: str, output: str | None) -> None:
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
    spec = _checked(RoleBindingSpec, spec)
    if dry_run != "none":
        show_dry_run(kube, ROLE_BINDINGS, name, spec, dry_run, output)
        return
    created = kube.create(ROLE_BINDINGS, name, spec)
    _print_created(ROLE_BINDING_VIEW, created, output, f"Role binding created: {name}")


role_binding.add_command(list_command(ROLE_BINDING_VIEW, """List role bindings: name, service account, roles,
    project, ready.

    -o wide adds the Ready message; -A lists every namespace you may list.

    \b
    Examples:
      tokenwarden role-binding list
      tokenwarden role-binding list -o yaml
      tokenwarden role-binding list -A
    """))
role_binding.add_command(get_command(ROLE_BINDING_VIEW))
role_binding.add_command(describe_command(ROLE_BINDING_VIEW))


@role_binding.command("delete")
@name_argument(ROLE_BINDING_VIEW)
@kube_options
def role_binding_delete(kube: Kube, name: str) -> None:
    """Delete a role binding: its roles leave the account's tokens.

    \b
    Example:
      tokenwarden role-binding delete shop-reader
    """
    _existing(kube, "role binding", name, lambda: kube.delete(ROLE_BINDINGS, name))
    done(f"Role binding deleted: {name}")
