"""`service-token import` and `migrate`: take existing API keys over without re-issuing them."""
from __future__ import annotations

import time
from dataclasses import dataclass

import click
from kubernetes.client.rest import ApiException

from tokenwarden import policies
from tokenwarden.kube import ApiPermanentError, ApiTransientError
from tokenwarden.kube._errors import ApiForbidden
from tokenwarden.kube import secrets as kube_secrets
from tokenwarden.cli._keysfile import KeyEntry, read_keys_file
from tokenwarden.cli._kubeopts import Kube, kube_options, require_name, server_message
from tokenwarden.cli._params import Duration, one_name
from tokenwarden.cli._output import CHANGE_OUTPUT, done, print_data, print_table
from tokenwarden.cli._views import object_name
from tokenwarden.cli._tokens import SERVICE_TOKEN, check_expiration, ready_message, wait_until_settled
from tokenwarden.kube._resources import GROUP, ROLE_BINDINGS, SERVICE_ACCOUNTS, SERVICE_TOKENS, VERSION
from tokenwarden.tokens import hash_token


def _split_source(value: str) -> tuple[str, str]:
    name, _, key = value.partition(":")
    if not name or "/" in name:
        raise click.BadParameter(f"{value!r}: give SECRET or SECRET:KEY of a Secret in the same namespace",
                                 param_hint="--from-secret")
    return name, key or "token"


def import_spec(secret: str, key: str, account: str | None, roles: list[str] | None,
                expiration: str | None, description: str | None = None) -> dict:
    spec: dict = {"import": {"secretRef": {"name": secret, "key": key}}}
    for field, value in (("serviceAccountName", account), ("roles", roles), ("expiration", expiration),
                         ("description", description)):
        if value:
            spec[field] = value
    return spec


_min_length_option = click.option(
    "--min-length", type=click.IntRange(min=1), default=16, show_default=True,
    help="Shortest key accepted: the operator's importMinLength.")


@click.command("import")
@click.argument("name_arg", metavar="[NAME]", required=False)
@click.option("--name", help="Name of the ServiceToken (a DNS label); or give it as NAME.")
@click.option("--from-secret", "source", required=True, help="SECRET[:KEY] holding the existing key (same namespace).")
@click.option("--service-account", help="tokenwarden ServiceAccount the key belongs to.")
@click.option("--roles", help="Comma-separated roles (default: all the account is granted).")
@click.option("--expiration", help="Expiration date, yyyy-MM-dd. Optional.")
@click.option("--timeout", type=Duration(), default="60s", show_default=True,
              help="How long to wait for the operator, e.g. 30s or 2m (a bare number: seconds).")
@_min_length_option
@kube_options
def import_token(kube: Kube, name_arg, name, source, service_account, roles, expiration, timeout, min_length) -> None:
    """Adopt an existing API key: only its hash is stored; the key keeps working.

    The Secret must opt in with the label tokenwarden.io/importable=true, and you must
    be allowed to get it (the admission webhook checks); both are checked before
    anything is created.

    \b
    Example:
      kubectl create secret generic grafana-key --from-literal=token=glsa_…
      kubectl label secret grafana-key tokenwarden.io/importable=true
      tokenwarden service-token import grafana-agent --from-secret grafana-key --roles writer
    """
    name = require_name(one_name(name_arg, name, "--name"), "NAME")
    secret, key = _split_source(source)
    role_list = [r.strip() for r in roles.split(",") if r.strip()] if roles else None
    if not role_list and not service_account:
        raise click.UsageError("give --roles, or --service-account to use the account's roles")
    spec = import_spec(secret, key, service_account, role_list, check_expiration(expiration))
    problems = _check_sources(kube, [_Source(name, secret, key)], min_length)
    if problems:
        raise click.ClickException("; ".join(p.partition(": ")[2] for p in problems) + "; nothing was created")
    created = kube.create(SERVICE_TOKENS, name, spec)
    obj = wait_until_settled(kube, SERVICE_TOKEN, created, timeout)
    status = obj.get("status") or {}
    if status.get("phase") != "Active":
        raise click.ClickException(
            f"service token {name} was not imported ({status.get('phase') or 'no status'}): "
            f"{ready_message(obj) or 'is the tokenwarden operator running?'}; "
            f"the ServiceToken is left in namespace {kube.namespace}: tokenwarden service-token delete {name}")
    done(f"Service token imported: {status['tokenId']}")


@dataclass
class _Planned:
    resource: object
    name: str
    spec: dict
    action: str = ""
    current: dict | None = None  # the object on the server
    status: str = ""  # a token's phase after the operator has looked at it


def _plan(entries: list[KeyEntry]) -> list[_Planned]:
    planned: dict[tuple[str, str], _Planned] = {}
    for entry in entries:
        planned.setdefault(("account", entry.account), _Planned(
            SERVICE_ACCOUNTS, entry.account, {"description": f"migrated API keys ({entry.account})"}))
        binding = f"{entry.account}-{'-'.join(sorted(entry.roles))}" + (f"-{entry.project}" if entry.project else "")
        spec = {"serviceAccountName": entry.account, "roles": sorted(entry.roles)}
        if entry.project:
            spec["project"] = entry.project
        planned.setdefault(("binding", binding), _Planned(ROLE_BINDINGS, binding[:63].rstrip("-"), spec))
        planned[("token", entry.name)] = _Planned(SERVICE_TOKENS, entry.name, import_spec(
            entry.secret, entry.key, entry.account, sorted(entry.roles), entry.expiration, entry.description))
    return list(planned.values())


def _existing(kube: Kube, item: _Planned) -> dict | None:
    try:
        return kube.custom.get_namespaced_custom_object(GROUP, VERSION, kube.namespace, item.resource.plural,
                                                        item.name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


@dataclass(frozen=True)
class _Source:
    name: str  # the ServiceToken
    secret: str
    key: str


def _holders(kube: Kube) -> dict[object, str]:
    """Tokens holding a key, by what the CLI can tell without the cluster's import key: the
    Secret and key they imported it from, and a bare sha256 of a key imported long ago."""
    holders: dict[object, str] = {}
    for token in kube.list(SERVICE_TOKENS):
        status, name = token.get("status") or {}, token["metadata"]["name"]
        if not status.get("tokenHash"):
            continue
        holders.setdefault(status["tokenHash"], name)
        ref = ((token.get("spec") or {}).get("import") or {}).get("secretRef") or {}
        if ref.get("name"):
            holders.setdefault((ref["name"], ref.get("key") or "token"), name)
    return holders


def _unreadable(secret: str, namespace: str, exc: Exception) -> str:
    if isinstance(exc, ApiForbidden):
        return (f"you may not get Secret {secret!r} in namespace {namespace}, and importing a key from it "
                f"needs exactly that (the admission webhook checks it); ask for get on that Secret "
                f"(kubectl auth can-i get secret/{secret} -n {namespace})")
    return f"cannot check the key: {exc}"


def _check_sources(kube: Kube, entries: list[_Source], minimum: int) -> list[str]:
    """What the operator would refuse about each token's key, found before anything is
    created: a Secret that is missing, unreadable for the user or not labelled importable,
    a missing key, an unusable value, a key listed twice or already imported by another
    ServiceToken. Values are compared in memory only; none is printed."""
    problems: list[str] = []
    # name → the Secret, None (absent) or why it cannot be read
    sources: dict[str, kube_secrets.SourceSecret | None | str] = {}
    holders = _holders(kube)
    seen: dict[str, str] = {}
    for entry in entries:
        if entry.secret not in sources:
            try:
                sources[entry.secret] = kube_secrets.read_source_secret(kube.core, kube.namespace, entry.secret)
            except (ApiPermanentError, ApiTransientError) as exc:
                sources[entry.secret] = _unreadable(entry.secret, kube.namespace, exc)
        source = sources[entry.secret]
        if isinstance(source, str):
            problems.append(f"{entry.name}: {source}")
            continue
        if source is None:
            problems.append(f"{entry.name}: Secret {entry.secret!r} does not exist in namespace {kube.namespace}; "
                            f"create it and label it: {policies.fix_label_command(entry.secret, kube.namespace)}")
            continue
        if not policies.is_importable(source.labels):
            problems.append(f"{entry.name}: "
                            + policies.source_not_importable_problem(entry.secret, kube.namespace).message)
        value = policies.adopted_key(source.data.get(entry.key), secret=entry.secret, key=entry.key,
                                     keys=source.data, minimum=minimum, key_field="`key`")
        if isinstance(value, policies.Problem):
            problems.append(f"{entry.name}: {value.message}")
            continue
        token_hash = hash_token(value)
        if token_hash in seen:
            problems.append(f"{entry.name}: holds the same key as {seen[token_hash]}; a key can belong to one "
                            "token only")
        seen.setdefault(token_hash, entry.name)
        # An import kept under the cluster's key is found by its source; the operator finds any other.
        holder = holders.get((entry.secret, entry.key)) or holders.get(token_hash)
        if holder is not None and holder != entry.name:
            problems.append(f"{entry.name}: the key already belongs to ServiceToken {kube.namespace}/{holder}")
    return problems


@click.command("migrate")
@click.option("--from-file", "path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="YAML with keys: [{name, serviceAccount, roles, project, expiration, secret, key}].")
@click.option("--dry-run", is_flag=True, help="Show what would be created; change nothing.")
@_min_length_option
@click.option("--timeout", type=Duration(), default="2m", show_default=True,
              help="How long to wait, in all, for the operator to import the keys, e.g. 5m.")
@CHANGE_OUTPUT
@kube_options
def migrate(kube: Kube, path: str, dry_run: bool, min_length: int, timeout: float, output: str | None) -> None:
    """Turn existing API keys into ServiceAccounts, RoleBindings and imported ServiceTokens.

    Idempotent: a second run changes nothing. Every problem in the file is listed
    before anything is created; with any problem, nothing is. Each Secret must carry
    the label tokenwarden.io/importable=true, and you must be allowed to get it; a
    missing label is listed with the kubectl command that adds it.

    \b
    Label the Secret that holds the keys first:
      kubectl label secret legacy-api-keys tokenwarden.io/importable=true
    keys.yaml:
      keys:
        - name: grafana-agent        # the ServiceToken
          serviceAccount: agents     # default: the name
          roles: [writer]
          secret: legacy-api-keys    # the Secret holding the key, same namespace
          key: grafana-agent         # its key in that Secret (default: token)
    """
    document = read_keys_file(path)
    problems = []
    seen: set[str] = set()
    for entry in document.keys:
        if entry.name in seen:
            problems.append(f"{entry.name}: the name appears twice in {path}")
        seen.add(entry.name)
        if entry.expiration:
            try:
                check_expiration(entry.expiration)
            except click.BadParameter as exc:
                problems.append(f"{entry.name}: {exc.message}")
    problems += _check_sources(kube, [_Source(e.name, e.secret, e.key) for e in document.keys], min_length)
    plan = _plan(document.keys)
    # The server and the admission webhook judge every object (roles, formats) without storing it.
    for item in plan:
        item.current = _existing(kube, item)
        if item.current is not None:
            continue
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": item.resource.kind, "metadata": {"name": item.name},
                "spec": item.spec}
        try:
            kube.custom.create_namespaced_custom_object(GROUP, VERSION, kube.namespace, item.resource.plural, body,
                                                        dry_run="All")
        except ApiException as exc:
            problems.append(f"{item.resource.kind} {item.name}: {server_message(exc)}")
    if problems:
        raise click.ClickException("nothing was created; fix these first:\n  " + "\n  ".join(problems))
    for item in plan:
        if item.current is not None:
            item.action = "unchanged" if item.current.get("spec") == item.spec else "exists (differs; left alone)"
        elif dry_run:
            item.action = "would create"
        else:
            item.current = kube.create(item.resource, item.name, item.spec)
            item.action = "created"
    columns = ["KIND", "NAME", "DETAIL", "ACTION"]
    rows = [[i.resource.kind, i.name, ",".join(i.spec.get("roles", [])) or i.spec.get("description", ""), i.action]
            for i in plan]
    if not dry_run:
        not_active = _settle_tokens(kube, plan, timeout)
        columns, rows = [*columns, "STATUS"], [[*row, item.status] for row, item in zip(rows, plan)]
    if output == "name":
        for item in plan:
            click.echo(object_name(item.resource, item.name))
    elif output:
        print_data([dict(zip((c.lower() for c in columns), row)) for row in rows], output)
    else:
        print_table(columns, rows)
    if dry_run:
        return
    if not_active:
        raise click.ClickException(f"{len(not_active)} of {len(document.keys)} key(s) are not in use:\n  "
                                   + "\n  ".join(not_active))
    if not output:
        done(f"Migrated {len(document.keys)} key(s) into namespace {kube.namespace}")


def _settle_tokens(kube: Kube, plan: list[_Planned], timeout: float) -> list[str]:
    """Wait, ``timeout`` seconds in all, until the operator has imported each token; fill in
    each token's status and return why those that are not Active are not."""
    deadline = time.monotonic() + timeout
    not_active = []
    for item in plan:
        if item.resource is not SERVICE_TOKENS:
            continue
        item.current = wait_until_settled(kube, SERVICE_TOKEN, item.current, max(1.0, deadline - time.monotonic()))
        status = item.current.get("status") or {}
        phase = status.get("phase") or "no status"
        if phase == "Active":
            item.status = f"Active, id {status.get('tokenId')}"
        else:
            item.status = phase
            not_active.append(f"{item.name}: {phase}: {ready_message(item.current) or 'is the operator running?'}")
    return not_active
