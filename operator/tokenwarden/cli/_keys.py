"""`service-token` and `ingestion-api-key`: the seed CLI's commands on top of the custom resources."""
from __future__ import annotations

import base64
import re
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone

import click
from kubernetes import watch
from kubernetes.client.rest import ApiException

from tokenwarden.cli._common import (
    OUTPUT,
    Kube,
    done,
    kube_options,
    print_data,
    print_table,
    require_dns_label,
    split_roles,
)
from tokenwarden.kube._resources import GROUP, VERSION

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class KeyKind:
    kind: str
    plural: str
    noun: str          # in messages: "service token"
    created: str       # "Service token created"
    deleted: str       # "Service token deleted"


SERVICE_TOKEN = KeyKind("ServiceToken", "servicetokens", "service token",
                        "Service token created", "Service token deleted")
INGESTION_KEY = KeyKind("IngestionAPIKey", "ingestionapikeys", "ingestion API key",
                        "Ingestion API Key generated", "Ingestion Api Key deleted")


def check_expiration(value: str | None) -> str | None:
    if value is None:
        return None
    if not DATE.match(value):
        raise click.BadParameter(f"{value!r} is not a date: the format is yyyy-MM-dd, e.g. 2027-01-31",
                                 param_hint="--expiration")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a real date (yyyy-MM-dd)", param_hint="--expiration") from None
    if day < datetime.now(timezone.utc).date():
        raise click.BadParameter(f"{value} is in the past: give a future date", param_hint="--expiration")
    return value


def _wait_active(kube: Kube, key: KeyKind, name: str, timeout: float) -> dict:
    """Watch the object until Active; raise ClickException naming why not."""
    custom = kube.custom
    selector = f"metadata.name={name}"
    progress = sys.stderr.isatty()
    if progress:
        click.echo(f"waiting for the operator to mint {key.noun} {name}…", err=True, nl=False)
    deadline = time.monotonic() + timeout
    listing = custom.list_namespaced_custom_object(GROUP, VERSION, kube.namespace, key.plural,
                                                   field_selector=selector)
    obj = next(iter(listing["items"]), None)
    version = listing["metadata"]["resourceVersion"]
    try:
        while True:
            phase = ((obj or {}).get("status") or {}).get("phase")
            if phase == "Active":
                return obj
            if phase == "Failed":
                raise click.ClickException(f"{key.noun} {name} failed: {_ready_message(obj)} "
                                           f"(the object is left for inspection: tokenwarden {_cli(key)} "
                                           f"delete {name})")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            stream = watch.Watch()
            for event in stream.stream(custom.list_namespaced_custom_object, GROUP, VERSION, kube.namespace,
                                       key.plural, field_selector=selector, resource_version=version,
                                       timeout_seconds=max(1, int(remaining))):
                obj = event["object"]
                version = obj["metadata"]["resourceVersion"]
                if ((obj.get("status") or {}).get("phase")) in ("Active", "Failed"):
                    stream.stop()
    finally:
        if progress:
            click.echo("\r\033[K", err=True, nl=False)
    reason = _ready_message(obj) if obj else ""
    left = _remove_unminted(kube, key, name)
    hint = f" ({reason})" if reason else " (is the tokenwarden operator running?)"
    raise click.ClickException(f"{key.noun} {name} was not minted within {timeout:.0f}s{hint}; {left}")


def _remove_unminted(kube: Kube, key: KeyKind, name: str) -> str:
    try:
        kube.delete(key.plural, name)
    except ApiException:
        return f"the {key.kind} {name} is left in namespace {kube.namespace}"
    return f"the {key.kind} was deleted again, nothing is left behind"


def _ready_message(obj: dict | None) -> str:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("message") or cond.get("reason") or ""
    return ""


def _cli(key: KeyKind) -> str:
    return "service-token" if key is SERVICE_TOKEN else "ingestion-api-key"


def create_and_show(kube: Kube, key: KeyKind, name: str, spec: dict, timeout: float) -> None:
    require_dns_label(name)
    kube.create(key.plural, key.kind, name, spec)
    obj = _wait_active(kube, key, name, timeout)
    secret = kube.core.read_namespaced_secret(obj["status"]["secretName"], kube.namespace)
    token = base64.b64decode(secret.data["token"]).decode()
    done(f"{key.created}: {token}")


def _find(kube: Kube, key: KeyKind, id_or_name: str) -> dict:
    for obj in kube.list(key.plural):
        if id_or_name in (obj["metadata"]["name"], (obj.get("status") or {}).get("tokenId")):
            return obj
    raise click.ClickException(f"no {key.noun} with ID or name {id_or_name!r} in namespace {kube.namespace!r}")


def delete_key(kube: Kube, key: KeyKind, id_or_name: str) -> None:
    obj = _find(kube, key, id_or_name)
    kube.delete(key.plural, obj["metadata"]["name"])
    done(f"{key.deleted}: {(obj.get('status') or {}).get('tokenId') or obj['metadata']['name']}")


def describe(obj: dict) -> dict:
    """What list prints for scripts: never the token, never its hash."""
    status = obj.get("status") or {}
    return {
        "id": status.get("tokenId"),
        "name": obj["metadata"]["name"],
        "namespace": obj["metadata"]["namespace"],
        "account": obj["spec"].get("serviceAccountName"),
        "roles": status.get("effectiveRoles", obj["spec"].get("roles")),
        "description": obj["spec"].get("description"),
        # What the user asked for (a date) or, for a ttl, when it ends.
        "expiration": obj["spec"].get("expiration") or status.get("expiresAt"),
        "phase": status.get("phase"),
        "expiresAt": status.get("expiresAt"),
        "lastUsedAt": status.get("lastUsedAt"),
    }


# -- service-token ------------------------------------------------------------

@click.group("service-token")
def service_token() -> None:
    """Manage service tokens (shown once, stored as a hash).

    \b
    Examples:
      tokenwarden service-token create --name ci --roles power-user --expiration 2027-01-31
      tokenwarden service-token list -o json
      tokenwarden service-token delete 107484341630693
    """


@service_token.command("create")
@click.option("--name", required=True, help="Name of the service token (a DNS label).")
@click.option("--expiration", help="Expiration date, yyyy-MM-dd (valid through that day, UTC). Optional.")
@click.option("--ttl", help="Lifetime instead of a date, e.g. 24h or 90d.")
@click.option("--roles", help="Comma-separated roles, e.g. power-user. Default: all the account is granted.")
@click.option("--service-account", help="tokenwarden ServiceAccount the token belongs to.")
@click.option("--description", help="What the token is for.")
@click.option("--secret-name", help="Secret to write the token to (default: the token's name).")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for the operator.")
@kube_options
def service_token_create(kube, name, expiration, ttl, roles, service_account, description, secret_name,
                         timeout) -> None:
    """Create a service token and print it: the only time it is shown.

    \b
    Example:
      tokenwarden service-token create --name my-service-token --roles power-user
      ✅ Service token created: twst_…
    """
    if expiration and ttl:
        raise click.UsageError("use --expiration or --ttl, not both")
    roles = split_roles(roles)
    if not roles and not service_account:
        raise click.UsageError("give --roles, or --service-account to use the account's roles")
    spec = {k: v for k, v in {
        "expiration": check_expiration(expiration), "ttl": ttl, "roles": roles,
        "serviceAccountName": service_account, "description": description, "secretName": secret_name,
    }.items() if v}
    create_and_show(kube, SERVICE_TOKEN, name, spec, timeout)


@service_token.command("list")
@OUTPUT
@kube_options
def service_token_list(kube, output) -> None:
    """List service tokens: ID, name, expiration, roles, account, phase, last used."""
    items = [describe(o) for o in kube.list(SERVICE_TOKEN.plural)]
    if output != "table":
        print_data(items, output)
        return
    print_table(["ID", "NAME", "EXPIRATION", "ROLES", "ACCOUNT", "PHASE", "LAST USED"], [
        [i["id"] or "", i["name"], i["expiration"] or "",
         "[" + " ".join(i["roles"] or []) + "]", i["account"] or "", i["phase"] or "", i["lastUsedAt"] or ""]
        for i in items])


@service_token.command("delete")
@click.argument("id_or_name")
@kube_options
def service_token_delete(kube, id_or_name) -> None:
    """Delete (revoke) a service token by its ID or name."""
    delete_key(kube, SERVICE_TOKEN, id_or_name)


# -- ingestion-api-key --------------------------------------------------------

@click.group("ingestion-api-key")
def ingestion_api_key() -> None:
    """Manage API Keys used by ingestion pipelines (agents, OpenTelemetry collectors).

    \b
    Examples:
      tokenwarden ingestion-api-key create --name my-ingestion-api-key
      tokenwarden ingestion-api-key list
      tokenwarden ingestion-api-key delete --id 250558013078953
    """


@ingestion_api_key.command("create")
@click.option("--name", required=True, help="Name of the key (a DNS label).")
@click.option("--description", help="Optional description of the key.")
@click.option("--expiration", help="Expiration date, yyyy-MM-dd. Optional.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for the operator.")
@kube_options
def ingestion_api_key_create(kube, name, description, expiration, timeout) -> None:
    """Create an ingestion API key and print it: the only time it is shown."""
    spec = {k: v for k, v in {"expiration": check_expiration(expiration), "description": description}.items() if v}
    create_and_show(kube, INGESTION_KEY, name, spec, timeout)


@ingestion_api_key.command("list")
@OUTPUT
@kube_options
def ingestion_api_key_list(kube, output) -> None:
    """List ingestion API keys: ID, name, expiration, description."""
    items = [describe(o) for o in kube.list(INGESTION_KEY.plural)]
    for item in items:
        item.pop("roles"), item.pop("account")
    if output != "table":
        print_data(items, output)
        return
    print_table(["ID", "NAME", "EXPIRATION", "DESCRIPTION"], [
        [i["id"] or "", i["name"], i["expiration"] or "", i["description"] or "-"]
        for i in items])


@ingestion_api_key.command("delete")
@click.option("--id", "key_id", required=True, help="ID (or name) of the key.")
@kube_options
def ingestion_api_key_delete(kube, key_id) -> None:
    """Delete an ingestion API key."""
    delete_key(kube, INGESTION_KEY, key_id)
