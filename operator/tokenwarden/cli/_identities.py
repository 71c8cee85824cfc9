"""`service-account`, `role-binding` and `token check`."""
from __future__ import annotations

import sys

import click

from tokenwarden.cli._common import OUTPUT, done, kube_options, print_data, print_table, require_dns_label, split_roles
from tokenwarden.tokens import TokenFormatError, parse_token


def _ready(obj: dict) -> str:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status", "")
    return ""


@click.group("service-account")
def service_account() -> None:
    """Manage service accounts: identities that own tokens and receive roles.

    \b
    Examples:
      tokenwarden service-account create profiler --description "profiling agents"
      tokenwarden service-account disable profiler
    """


@service_account.command("create")
@click.argument("name")
@click.option("--description", help="What the account is for.")
@click.option("--disabled", is_flag=True, help="Create it disabled (its tokens fail verification).")
@kube_options
def service_account_create(kube, name, description, disabled) -> None:
    """Create a service account."""
    spec = {k: v for k, v in {"description": description, "disabled": disabled}.items() if v}
    kube.create("serviceaccounts", "ServiceAccount", require_dns_label(name, "NAME"), spec)
    done(f"Service account created: {name}")


@service_account.command("list")
@OUTPUT
@kube_options
def service_account_list(kube, output) -> None:
    """List service accounts."""
    items = [{"name": o["metadata"]["name"], "description": o["spec"].get("description"),
              "disabled": bool(o["spec"].get("disabled")),
              "tokens": (o.get("status") or {}).get("tokenCount", 0), "ready": _ready(o)}
             for o in kube.list("serviceaccounts")]
    if output != "table":
        print_data(items, output)
        return
    print_table(["NAME", "DISABLED", "TOKENS", "DESCRIPTION"],
                [[i["name"], str(i["disabled"]).lower(), i["tokens"], i["description"] or "-"] for i in items])


@service_account.command("delete")
@click.argument("name")
@kube_options
def service_account_delete(kube, name) -> None:
    """Delete a service account: its tokens are revoked."""
    kube.delete("serviceaccounts", name)
    done(f"Service account deleted: {name}")


def _set_disabled(kube, name: str, disabled: bool) -> None:
    kube.patch("serviceaccounts", name, {"spec": {"disabled": disabled}})
    done(f"Service account {'disabled' if disabled else 'enabled'}: {name}")


@service_account.command("disable")
@click.argument("name")
@kube_options
def service_account_disable(kube, name) -> None:
    """Disable an account: its tokens fail verification but are kept."""
    _set_disabled(kube, name, True)


@service_account.command("enable")
@click.argument("name")
@kube_options
def service_account_enable(kube, name) -> None:
    """Enable a disabled account again."""
    _set_disabled(kube, name, False)


@click.group("role-binding")
def role_binding() -> None:
    """Grant roles to a service account, optionally for one project.

    \b
    Examples:
      tokenwarden role-binding create profiler-writer --service-account profiler --roles profile-writer
      tokenwarden role-binding create shop-reader --service-account ci --roles reader --project shop
    """


@role_binding.command("create")
@click.argument("name")
@click.option("--service-account", required=True, help="The service account that gets the roles.")
@click.option("--roles", required=True, help="Comma-separated roles from the catalog.")
@click.option("--project", help="Grant the roles only within this project.")
@kube_options
def role_binding_create(kube, name, service_account, roles, project) -> None:
    """Create a role binding."""
    spec = {"serviceAccountName": service_account, "roles": split_roles(roles)}
    if project:
        spec["project"] = project
    kube.create("rolebindings", "RoleBinding", require_dns_label(name, "NAME"), spec)
    done(f"Role binding created: {name}")


@role_binding.command("list")
@OUTPUT
@kube_options
def role_binding_list(kube, output) -> None:
    """List role bindings."""
    items = [{"name": o["metadata"]["name"], "serviceAccount": o["spec"].get("serviceAccountName"),
              "roles": o["spec"].get("roles") or [], "project": o["spec"].get("project"), "ready": _ready(o)}
             for o in kube.list("rolebindings")]
    if output != "table":
        print_data(items, output)
        return
    print_table(["NAME", "SERVICE ACCOUNT", "ROLES", "PROJECT", "READY"],
                [[i["name"], i["serviceAccount"], "[" + " ".join(i["roles"]) + "]", i["project"] or "",
                  i["ready"]] for i in items])


@role_binding.command("delete")
@click.argument("name")
@kube_options
def role_binding_delete(kube, name) -> None:
    """Delete a role binding: its roles leave the account's tokens."""
    kube.delete("rolebindings", name)
    done(f"Role binding deleted: {name}")


@click.group("token")
def token() -> None:
    """Offline checks of token strings (no cluster needed)."""


@token.command("check")
@click.argument("value", required=False, default="-")
def token_check(value: str) -> None:
    """Tell whether VALUE (or stdin with -) has a tokenwarden token's form and checksum.

    For secret scanners: exit 0 for a well-formed token, 1 otherwise. The token
    is never sent anywhere.
    """
    text = sys.stdin.read().strip() if value == "-" else value.strip()
    try:
        parsed = parse_token(text)
    except TokenFormatError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    click.echo(f"valid tokenwarden token (prefix {parsed.prefix})")
