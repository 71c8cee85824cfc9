"""`service-token` and `ingestion-api-key`: the seed CLI's commands on top of the custom resources.

``create`` makes the custom resource, watches it until the operator has minted the
token into its Secret, reads that Secret once and prints the token: the only place
the plaintext is ever shown. ``list`` never shows a token or its hash.
"""
from __future__ import annotations

import base64
import math
import re
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone

import click
from kubernetes import watch
from kubernetes.client.rest import ApiException
from pydantic import BaseModel, ValidationError

from tokenwarden.api import IngestionAPIKeySpec, ServiceTokenSpec, describe_validation_error
from tokenwarden.cli._accounts import split_roles
from tokenwarden.cli._kubeopts import Kube, complete_names, kube_options, require_name
from tokenwarden.cli._output import OUTPUT, done, print_data, print_table, roles_cell
from tokenwarden.durations import parse_duration
from tokenwarden.kube._resources import GROUP, INGESTION_KEYS, SERVICE_TOKENS, VERSION, Resource

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SETTLED = ("Active", "Failed")


@dataclass(frozen=True)
class KeyKind:
    """What differs between service tokens and ingestion keys, down to the seed's capitalisation."""

    resource: Resource
    spec_model: type[BaseModel]
    command: str       # the CLI group: "service-token"
    noun: str          # in messages: "service token"
    created: str       # "Service token created"
    deleted: str       # "Service token deleted"


SERVICE_TOKEN = KeyKind(SERVICE_TOKENS, ServiceTokenSpec, "service-token", "service token",
                        "Service token created", "Service token deleted")
INGESTION_KEY = KeyKind(INGESTION_KEYS, IngestionAPIKeySpec, "ingestion-api-key", "ingestion API key",
                        "Ingestion API Key generated", "Ingestion Api Key deleted")


# -- input checks, before anything reaches the server -------------------------

def check_expiration(value: str | None, today: date | None = None) -> str | None:
    """``value`` if it is a yyyy-MM-dd date, today or later (UTC); else a usage error."""
    if value is None:
        return None
    if not _DATE.match(value):
        raise click.BadParameter(f"{value!r} is not a date: the format is yyyy-MM-dd, e.g. 2027-01-31",
                                 param_hint="--expiration")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a real date (the format is yyyy-MM-dd)",
                                 param_hint="--expiration") from None
    # A date is valid through that whole day in UTC, so today is still a future expiry.
    if day < (today or datetime.now(timezone.utc).date()):
        raise click.BadParameter(f"{value} is in the past: give today or a later date (yyyy-MM-dd)",
                                 param_hint="--expiration")
    return value


def check_ttl(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from None
    return value


def build_spec(key: KeyKind, **fields: object) -> dict:
    """The spec from the options given (camelCase, unset ones left out), checked by the API model.

    The operator and the admission webhook parse specs with the same model, so what
    passes here is refused there only for reasons the cluster alone knows (roles
    catalog, quotas, accounts).
    """
    spec = {name: value for name, value in fields.items() if value not in (None, "", [])}
    if spec.get("expiration") and spec.get("ttl"):
        raise click.UsageError("use --expiration or --ttl, not both")
    try:
        key.spec_model.model_validate(spec)
    except ValidationError as exc:
        raise click.UsageError(describe_validation_error(exc)) from None
    return spec


# -- create: watch until minted, show once ------------------------------------

def _phase(obj: dict | None) -> str | None:
    return ((obj or {}).get("status") or {}).get("phase")


def ready_message(obj: dict | None) -> str:
    """The Ready condition's message (or reason): why the object is not Active."""
    for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("message") or condition.get("reason") or ""
    return ""


def wait_until_settled(kube: Kube, key: KeyKind, created: dict, timeout: float) -> dict:
    """Watch the object from its creation until its phase is Active or Failed, or
    ``timeout`` seconds pass; return it as last seen."""
    name = created["metadata"]["name"]
    obj, version = created, created["metadata"]["resourceVersion"]
    deadline = time.monotonic() + timeout
    while _phase(obj) not in _SETTLED:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        stream = watch.Watch()
        try:
            for event in stream.stream(kube.custom.list_namespaced_custom_object, GROUP, VERSION,
                                       kube.namespace, key.resource.plural,
                                       field_selector=f"metadata.name={name}", resource_version=version,
                                       timeout_seconds=max(1, math.ceil(remaining)),
                                       # A server that stops talking must not hang us past the deadline.
                                       _request_timeout=math.ceil(remaining) + 10):
                if event["type"] == "DELETED":
                    raise click.ClickException(
                        f"the {key.resource.kind} {name} was deleted by someone else before it was minted")
                obj = event["object"]
                version = obj["metadata"]["resourceVersion"]
                if _phase(obj) in _SETTLED or time.monotonic() >= deadline:
                    break
        except ApiException as exc:
            if exc.status != 410:
                raise
            # The watch fell too far behind the server: start again from the object as it is now.
            obj = kube.custom.get_namespaced_custom_object(GROUP, VERSION, kube.namespace,
                                                           key.resource.plural, name)
            version = obj["metadata"]["resourceVersion"]
        finally:
            stream.stop()
    return obj


def _remove_unminted(kube: Kube, key: KeyKind, name: str) -> str:
    try:
        kube.delete(key.resource, name)
    except ApiException:
        return f"the {key.resource.kind} {name} is left in namespace {kube.namespace}"
    return f"the {key.resource.kind} was deleted again, nothing is left behind"


def create_and_show(kube: Kube, key: KeyKind, name: str, spec: dict, timeout: float) -> None:
    """Create the object, wait for its token and print it once; errors name what to do."""
    created = kube.create(key.resource, name, spec)
    progress = sys.stderr.isatty()
    if progress:
        click.echo(f"Waiting for the operator to mint {key.noun} {name}…", err=True, nl=False)
    try:
        obj = wait_until_settled(kube, key, created, timeout)
    except KeyboardInterrupt:
        # Ctrl-C means "never mind": do not leave a token behind that nobody was shown.
        if progress:
            click.echo(err=True)  # end the progress line
        click.echo(f"interrupted; {_remove_unminted(kube, key, name)}", err=True)
        raise click.Abort() from None
    finally:
        if progress:
            click.echo("\r\033[K", err=True, nl=False)
    phase = _phase(obj)
    if phase == "Failed":
        # Left for inspection: its Ready condition and events say more than this line.
        raise click.ClickException(
            f"{key.noun} {name} failed: {ready_message(obj) or 'no reason given'}. "
            f"The {key.resource.kind} {name} is left in namespace {kube.namespace} for inspection "
            f"(kubectl describe {key.resource.plural} {name} -n {kube.namespace}); "
            f"remove it with: tokenwarden {key.command} delete {_delete_args(key, name)} -n {kube.namespace}")
    if phase != "Active":
        reason = ready_message(obj)
        hint = f" ({reason})" if reason else " (is the tokenwarden operator running?)"
        # A token minted after we gave up would sit in a Secret nobody was shown: revoke it now.
        left = _remove_unminted(kube, key, name)
        raise click.ClickException(f"{key.noun} {name} was not minted within {timeout:g}s{hint}; {left}")
    secret_name = obj["status"].get("secretName") or name
    secret = kube.core.read_namespaced_secret(secret_name, kube.namespace)
    encoded = (secret.data or {}).get("token")
    if not encoded:
        raise click.ClickException(f"Secret {secret_name} in namespace {kube.namespace} has no key 'token'; "
                                   "the operator log says why")
    done(f"{key.created}: {base64.b64decode(encoded).decode()}")


def _delete_args(key: KeyKind, name: str) -> str:
    return f"--id {name}" if key is INGESTION_KEY else name


# -- list and delete ----------------------------------------------------------

def describe(obj: dict, key: KeyKind) -> dict:
    """What ``list -o json|yaml`` prints: plain fields, never the token or its hash."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    item = {
        "id": status.get("tokenId"),
        "name": obj["metadata"]["name"],
        "namespace": obj["metadata"]["namespace"],
        "account": spec.get("serviceAccountName"),
        "roles": status.get("effectiveRoles", spec.get("roles")),
        "phase": status.get("phase"),
        "expiresAt": status.get("expiresAt"),
        "lastUsedAt": status.get("lastUsedAt"),
        "description": spec.get("description"),
    }
    if key is INGESTION_KEY:
        del item["account"], item["roles"]
    return item


def expiration_cell(obj: dict) -> str:
    """The date the user gave, as the seed prints it; for a ttl, the instant it ends; else blank."""
    return (obj.get("spec") or {}).get("expiration") or (obj.get("status") or {}).get("expiresAt") or ""


def find(kube: Kube, key: KeyKind, id_or_name: str) -> dict:
    for obj in kube.list(key.resource):
        if id_or_name in (obj["metadata"]["name"], (obj.get("status") or {}).get("tokenId")):
            return obj
    raise click.ClickException(f"no {key.noun} with ID or name {id_or_name!r} in namespace {kube.namespace!r}")


def delete_key(kube: Kube, key: KeyKind, id_or_name: str) -> None:
    obj = find(kube, key, id_or_name)
    kube.delete(key.resource, obj["metadata"]["name"])
    done(f"{key.deleted}: {(obj.get('status') or {}).get('tokenId') or obj['metadata']['name']}")


def _token_id(obj: dict) -> str | None:
    return (obj.get("status") or {}).get("tokenId")


# -- service-token ------------------------------------------------------------

@click.group("service-token")
def service_token() -> None:
    """Manage service tokens.

    Service tokens are credentials for CI jobs and other headless clients. A token
    is shown once, by create; the cluster keeps only its hash, and the token itself
    in a Secret (key "token") that agents can mount.

    \b
    Examples:
      tokenwarden service-token create --name my-service-token --roles power-user
      tokenwarden service-token create --name ci --service-account ci --ttl 90d
      tokenwarden service-token list -o json
      tokenwarden service-token delete 107484341630693
    """


@service_token.command("create")
@click.option("--name", required=True, help="Name of the service token (lower-case letters, digits, '-').")
@click.option("--expiration", help="Expiration date, yyyy-MM-dd, valid through that day (UTC). Optional.")
@click.option("--ttl", help="Lifetime instead of a date, e.g. 24h or 90d. Optional.")
@click.option("--roles", help="Comma-separated roles, e.g. power-user,reader. "
                              "Default with --service-account: all the account is granted.")
@click.option("--service-account", help="tokenwarden ServiceAccount the token belongs to.")
@click.option("--description", help="What the token is for.")
@click.option("--secret-name", help="Secret to write the token to (default: the token's name).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds to wait for the operator to mint the token.")
@kube_options
def service_token_create(kube: Kube, name, expiration, ttl, roles, service_account, description, secret_name,
                         timeout) -> None:
    """Create a service token and print it: the only time it is shown.

    \b
    Examples:
      $ tokenwarden service-token create --name my-service-token --roles power-user
      ✅ Service token created: twst_…
      $ tokenwarden service-token create --name ci --roles reader --expiration 2027-01-31 -n team-a
    """
    require_name(name)
    roles = split_roles(roles)
    if not roles and not service_account:
        raise click.UsageError("give --roles, or --service-account to use the roles its bindings grant")
    spec = build_spec(SERVICE_TOKEN, expiration=check_expiration(expiration), ttl=check_ttl(ttl), roles=roles,
                      serviceAccountName=service_account, description=description, secretName=secret_name)
    create_and_show(kube, SERVICE_TOKEN, name, spec, timeout)


@service_token.command("list")
@OUTPUT
@kube_options
def service_token_list(kube: Kube, output: str) -> None:
    """List service tokens: ID, name, expiration, roles, account, phase, last used.

    \b
    Examples:
      tokenwarden service-token list
      tokenwarden service-token list -n team-a -o yaml
    """
    objects = kube.list(SERVICE_TOKEN.resource)
    if output != "table":
        print_data([describe(o, SERVICE_TOKEN) for o in objects], output)
        return
    rows = []
    for obj in objects:
        item = describe(obj, SERVICE_TOKEN)
        rows.append([item["id"], item["name"], expiration_cell(obj), roles_cell(item["roles"]), item["account"],
                     item["phase"], item["lastUsedAt"]])
    print_table(["ID", "NAME", "EXPIRATION", "ROLES", "ACCOUNT", "PHASE", "LAST USED"], rows,
                status_column="PHASE")


@service_token.command("delete")
@click.argument("id_or_name", shell_complete=complete_names(SERVICE_TOKENS, _token_id))
@kube_options
def service_token_delete(kube: Kube, id_or_name: str) -> None:
    """Delete (revoke) the service token with this ID or name; its Secret goes with it.

    \b
    Examples:
      tokenwarden service-token delete 107484341630693
      tokenwarden service-token delete my-service-token
    """
    delete_key(kube, SERVICE_TOKEN, id_or_name)


# -- ingestion-api-key --------------------------------------------------------

@click.group("ingestion-api-key")
def ingestion_api_key() -> None:
    """Manage API Keys used by ingestion pipelines.

    Ingestion pipelines are the data (spans, metrics, logs and so on) that agents and
    OpenTelemetry collectors send. A key grants only the ingest permission.

    \b
    Examples:
      tokenwarden ingestion-api-key create --name my-ingestion-api-key
      tokenwarden ingestion-api-key list
      tokenwarden ingestion-api-key delete --id 250558013078953
    """


@ingestion_api_key.command("create")
@click.option("--name", required=True, help="Name of the key (lower-case letters, digits, '-').")
@click.option("--description", help="Optional description of the key.")
@click.option("--expiration", help="Expiration date, yyyy-MM-dd, valid through that day (UTC). Optional.")
@click.option("--ttl", help="Lifetime instead of a date, e.g. 90d. Optional.")
@click.option("--secret-name", help="Secret to write the key to (default: the key's name).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds to wait for the operator to mint the key.")
@kube_options
def ingestion_api_key_create(kube: Kube, name, description, expiration, ttl, secret_name, timeout) -> None:
    """Create a new ingestion API key and print it: the only time it is shown.

    \b
    Examples:
      $ tokenwarden ingestion-api-key create --name my-ingestion-api-key
      ✅ Ingestion API Key generated: twik_…
      $ tokenwarden ingestion-api-key create --name otel --description "OTel collector" --expiration 2027-01-31
    """
    require_name(name)
    spec = build_spec(INGESTION_KEY, expiration=check_expiration(expiration), ttl=check_ttl(ttl),
                      description=description, secretName=secret_name)
    create_and_show(kube, INGESTION_KEY, name, spec, timeout)


@ingestion_api_key.command("list")
@OUTPUT
@kube_options
def ingestion_api_key_list(kube: Kube, output: str) -> None:
    """List ingestion API keys: ID, name, expiration, description.

    \b
    Examples:
      tokenwarden ingestion-api-key list
      tokenwarden ingestion-api-key list -o json
    """
    objects = kube.list(INGESTION_KEY.resource)
    if output != "table":
        print_data([describe(o, INGESTION_KEY) for o in objects], output)
        return
    print_table(["ID", "NAME", "EXPIRATION", "DESCRIPTION"], [
        [_token_id(o), o["metadata"]["name"], expiration_cell(o), (o.get("spec") or {}).get("description") or "-"]
        for o in objects])


@ingestion_api_key.command("delete")
@click.option("--id", "key_id", required=True, shell_complete=complete_names(INGESTION_KEYS, _token_id),
              help="ID (or name) of the key, as list prints it.")
@kube_options
def ingestion_api_key_delete(kube: Kube, key_id: str) -> None:
    """Delete (revoke) an ingestion API key.

    \b
    Example:
      tokenwarden ingestion-api-key delete --id 250558013078953
    """
    delete_key(kube, INGESTION_KEY, key_id)
