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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone

import click
from kubernetes import watch
from kubernetes.client.rest import ApiException
from pydantic import BaseModel, ValidationError

from tokenwarden.api import IngestionAPIKeySpec, ServiceTokenSpec, describe_validation_error
from tokenwarden.cli._accounts import split_roles
from tokenwarden.cli._describe import describe_command
from tokenwarden.cli._kubeopts import Kube, complete_names, kube_options, require_name
from tokenwarden.cli._output import CHANGE_OUTPUT, decorated, done, roles_cell
from tokenwarden.cli._params import Duration, one_name
from tokenwarden.cli._views import (DRY_RUN, View, find_object, get_command, list_command, name_argument,
                                    print_change, ready_condition, show_dry_run, token_id)
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
    condition = ready_condition(obj or {})
    return condition.get("message") or condition.get("reason") or ""


def watch_object(kube: Kube, resource: Resource, start: dict, finished: Callable[[dict], bool], timeout: float,
                 deleted: str) -> dict:
    """Watch the object from ``start`` until ``finished(obj)`` or ``timeout`` seconds pass;
    return it as last seen. Its deletion is an error saying ``deleted``."""
    name = start["metadata"]["name"]
    obj, version = start, start["metadata"]["resourceVersion"]
    deadline = time.monotonic() + timeout
    while not finished(obj):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        stream = watch.Watch()
        try:
            for event in stream.stream(kube.custom.list_namespaced_custom_object, GROUP, VERSION,
                                       kube.namespace, resource.plural,
                                       field_selector=f"metadata.name={name}", resource_version=version,
                                       timeout_seconds=max(1, math.ceil(remaining)),
                                       # A server that stops talking must not hang us past the deadline.
                                       _request_timeout=math.ceil(remaining) + 10):
                if event["type"] == "DELETED":
                    raise click.ClickException(deleted)
                obj = event["object"]
                version = obj["metadata"]["resourceVersion"]
                if finished(obj) or time.monotonic() >= deadline:
                    break
        except ApiException as exc:
            if exc.status != 410:
                raise
            # The watch fell too far behind the server: start again from the object as it is now.
            obj = kube.custom.get_namespaced_custom_object(GROUP, VERSION, kube.namespace, resource.plural, name)
            version = obj["metadata"]["resourceVersion"]
        finally:
            stream.stop()
    return obj


def wait_until_settled(kube: Kube, key: KeyKind, created: dict, timeout: float) -> dict:
    """Watch the object from its creation until its phase is Active or Failed, or
    ``timeout`` seconds pass; return it as last seen."""
    return watch_object(kube, key.resource, created, lambda obj: _phase(obj) in _SETTLED, timeout,
                        f"the {key.resource.kind} {created['metadata']['name']} was deleted by someone else "
                        "before it was minted")


def _remove_unminted(kube: Kube, key: KeyKind, name: str) -> str:
    try:
        kube.delete(key.resource, name)
    except ApiException:
        return f"the {key.resource.kind} {name} is left in namespace {kube.namespace}"
    return f"the {key.resource.kind} was deleted again, nothing is left behind"


def create_and_show(kube: Kube, key: KeyKind, name: str, spec: dict, timeout: float, output: str | None = None) -> None:
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
            f"(tokenwarden {key.command} describe {name} -n {kube.namespace}); "
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
    token = base64.b64decode(encoded).decode()
    print_change(key.resource, name, {**describe(obj, key), "secretName": secret_name, "token": token}, output,
                 decorated(f"{key.created}: {token}"))


def _delete_args(key: KeyKind, name: str) -> str:
    return f"--id {name}" if key is INGESTION_KEY else name


def create_token(kube: Kube, key: KeyKind, name: str, spec: dict, timeout: float, dry_run: str,
                 output: str | None) -> None:
    """``create``'s last step: a manifest for --dry-run, else the token, shown once."""
    if dry_run != "none":
        show_dry_run(kube, key.resource, name, spec, dry_run, output)
    else:
        create_and_show(kube, key, name, spec, timeout, output)


# -- what list, get and describe show ----------------------------------------

def describe(obj: dict, key: KeyKind) -> dict:
    """What ``list -o json|yaml`` prints: plain fields, never the token or its hash."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    item = {
        "id": status.get("tokenId"),
        "name": obj["metadata"]["name"],
        "namespace": obj["metadata"].get("namespace"),
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


def _wide_cells(obj: dict) -> list:
    status = obj.get("status") or {}
    return [status.get("secretName"), status.get("issuedAt"), status.get("rotatedAt"), ready_message(obj)]


def _token_row(obj: dict) -> list:
    item = describe(obj, SERVICE_TOKEN)
    return [item["id"], item["name"], expiration_cell(obj), roles_cell(item["roles"]), item["account"],
            item["phase"], item["lastUsedAt"]]


SERVICE_TOKEN_VIEW = View(SERVICE_TOKENS, SERVICE_TOKEN.command, SERVICE_TOKEN.noun,
                          lambda obj: describe(obj, SERVICE_TOKEN),
                          ["ID", "NAME", "EXPIRATION", "ROLES", "ACCOUNT", "PHASE", "LAST USED"], _token_row,
                          ["SECRET", "ISSUED AT", "ROTATED AT", "MESSAGE"], _wide_cells,
                          status_column="PHASE", by_id=True)
INGESTION_KEY_VIEW = View(INGESTION_KEYS, INGESTION_KEY.command, INGESTION_KEY.noun,
                          lambda obj: describe(obj, INGESTION_KEY), ["ID", "NAME", "EXPIRATION", "DESCRIPTION"],
                          lambda obj: [token_id(obj), obj["metadata"]["name"], expiration_cell(obj),
                                       (obj.get("spec") or {}).get("description") or "-"],
                          ["PHASE", "LAST USED", "SECRET", "ISSUED AT", "ROTATED AT", "MESSAGE"],
                          lambda obj: [_phase(obj), (obj.get("status") or {}).get("lastUsedAt"), *_wide_cells(obj)],
                          status_column="PHASE", by_id=True)


def delete_key(kube: Kube, key: KeyKind, id_or_name: str) -> None:
    obj = find_object(kube, SERVICE_TOKEN_VIEW if key is SERVICE_TOKEN else INGESTION_KEY_VIEW, id_or_name)
    kube.delete(key.resource, obj["metadata"]["name"])
    done(f"{key.deleted}: {token_id(obj) or obj['metadata']['name']}")


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
      tokenwarden service-token create ci --service-account ci --ttl 90d
      tokenwarden service-token list -A
      tokenwarden service-token describe ci
      tokenwarden service-token rotate ci
      tokenwarden service-token delete 107484341630693
    """


_TIMEOUT_HELP = "How long to wait for the operator to mint the {}, e.g. 30s or 2m (a bare number: seconds)."


@service_token.command("create")
@click.argument("name_arg", metavar="[NAME]", required=False)
@click.option("--name", help="Name of the service token (lower-case letters, digits, '-'); or give it as NAME.")
@click.option("--expiration", help="Expiration date, yyyy-MM-dd, valid through that day (UTC). Optional.")
@click.option("--ttl", help="Lifetime instead of a date, e.g. 24h or 90d. Optional.")
@click.option("--roles", help="Comma-separated roles, e.g. power-user,reader. "
                              "Default with --service-account: all the account is granted.")
@click.option("--service-account", help="tokenwarden ServiceAccount the token belongs to.")
@click.option("--description", help="What the token is for.")
@click.option("--secret-name", help="Secret to write the token to (default: the token's name).")
@click.option("--timeout", type=Duration(), default="60s", show_default=True, help=_TIMEOUT_HELP.format("token"))
@DRY_RUN
@CHANGE_OUTPUT
@kube_options
def service_token_create(kube: Kube, name_arg, name, expiration, ttl, roles, service_account, description,
                         secret_name, timeout, dry_run, output) -> None:
    """Create a service token and print it: the only time it is shown.

    With -o json or yaml the token is the field "token" beside the object's fields.
    With --dry-run=client nothing is created: the manifest is printed (-o yaml for Git).

    \b
    Examples:
      $ tokenwarden service-token create --name my-service-token --roles power-user
      ✅ Service token created: twst_…
      $ tokenwarden service-token create ci --roles reader --expiration 2027-01-31 -n team-a
      $ tokenwarden service-token create ci --roles reader --dry-run=client -o yaml > ci.yaml
    """
    name = require_name(one_name(name_arg, name, "--name"), "NAME")
    roles = split_roles(roles)
    if not roles and not service_account:
        raise click.UsageError("give --roles, or --service-account to use the roles its bindings grant")
    spec = build_spec(SERVICE_TOKEN, expiration=check_expiration(expiration), ttl=check_ttl(ttl), roles=roles,
                      serviceAccountName=service_account, description=description, secretName=secret_name)
    create_token(kube, SERVICE_TOKEN, name, spec, timeout, dry_run, output)


service_token.add_command(list_command(SERVICE_TOKEN_VIEW, """List service tokens: ID, name, expiration, roles,
    account, phase, last used.

    -o wide adds the Secret, when it was issued and rotated, and the Ready message;
    -A lists every namespace you may list. Never a token or its hash.

    \b
    Examples:
      tokenwarden service-token list
      tokenwarden service-token list -n team-a -o yaml
      tokenwarden service-token list -A -o wide
    """))
service_token.add_command(get_command(SERVICE_TOKEN_VIEW))
service_token.add_command(describe_command(SERVICE_TOKEN_VIEW))


@service_token.command("delete")
@name_argument(SERVICE_TOKEN_VIEW, "ID_OR_NAME")
@kube_options
def service_token_delete(kube: Kube, name: str) -> None:
    """Delete (revoke) the service token with this ID or name; its Secret goes with it.

    \b
    Examples:
      tokenwarden service-token delete 107484341630693
      tokenwarden service-token delete my-service-token
    """
    delete_key(kube, SERVICE_TOKEN, name)


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
      tokenwarden ingestion-api-key describe my-ingestion-api-key
      tokenwarden ingestion-api-key delete --id 250558013078953
    """


@ingestion_api_key.command("create")
@click.argument("name_arg", metavar="[NAME]", required=False)
@click.option("--name", help="Name of the key (lower-case letters, digits, '-'); or give it as NAME.")
@click.option("--description", help="Optional description of the key.")
@click.option("--expiration", help="Expiration date, yyyy-MM-dd, valid through that day (UTC). Optional.")
@click.option("--ttl", help="Lifetime instead of a date, e.g. 90d. Optional.")
@click.option("--secret-name", help="Secret to write the key to (default: the key's name).")
@click.option("--timeout", type=Duration(), default="60s", show_default=True, help=_TIMEOUT_HELP.format("key"))
@DRY_RUN
@CHANGE_OUTPUT
@kube_options
def ingestion_api_key_create(kube: Kube, name_arg, name, description, expiration, ttl, secret_name, timeout,
                             dry_run, output) -> None:
    """Create a new ingestion API key and print it: the only time it is shown.

    With -o json or yaml the key is the field "token" beside the object's fields.
    With --dry-run=client nothing is created: the manifest is printed (-o yaml for Git).

    \b
    Examples:
      $ tokenwarden ingestion-api-key create --name my-ingestion-api-key
      ✅ Ingestion API Key generated: twik_…
      $ tokenwarden ingestion-api-key create otel --description "OTel collector" --expiration 2027-01-31
    """
    name = require_name(one_name(name_arg, name, "--name"), "NAME")
    spec = build_spec(INGESTION_KEY, expiration=check_expiration(expiration), ttl=check_ttl(ttl),
                      description=description, secretName=secret_name)
    create_token(kube, INGESTION_KEY, name, spec, timeout, dry_run, output)


ingestion_api_key.add_command(list_command(INGESTION_KEY_VIEW, """List ingestion API keys: ID, name, expiration,
    description.

    -o wide adds the phase, when it was last used, the Secret, when it was issued and
    rotated, and the Ready message; -A lists every namespace you may list.

    \b
    Examples:
      tokenwarden ingestion-api-key list
      tokenwarden ingestion-api-key list -o json
      tokenwarden ingestion-api-key list -A
    """))
ingestion_api_key.add_command(get_command(INGESTION_KEY_VIEW))
ingestion_api_key.add_command(describe_command(INGESTION_KEY_VIEW))


@ingestion_api_key.command("delete")
@click.argument("id_arg", metavar="[ID_OR_NAME]", required=False,
                shell_complete=complete_names(INGESTION_KEYS, token_id))
@click.option("--id", "key_id", shell_complete=complete_names(INGESTION_KEYS, token_id),
              help="ID (or name) of the key, as list prints it; or give it as ID_OR_NAME.")
@kube_options
def ingestion_api_key_delete(kube: Kube, id_arg: str | None, key_id: str | None) -> None:
    """Delete (revoke) an ingestion API key.

    \b
    Examples:
      tokenwarden ingestion-api-key delete --id 250558013078953
      tokenwarden ingestion-api-key delete my-ingestion-api-key
    """
    delete_key(kube, INGESTION_KEY, require_name(one_name(id_arg, key_id, "--id", "ID_OR_NAME"), "ID_OR_NAME"))
