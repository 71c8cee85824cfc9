"""How each kind is shown, and the commands every kind has alike: ``list`` (``-A`` for every
namespace) and ``get NAME``, each with ``-o table|wide|name|json|yaml``.

A kind's :class:`View` says what its columns and its json/yaml fields are; the printing
and the lookups are written once, here.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import click

from tokenwarden.cli._kubeopts import Kube, complete_names, kube_options, manifest, require_name
from tokenwarden.cli._output import OUTPUT, print_data, print_table
from tokenwarden.kube._resources import GROUP, Resource

ALL_NAMESPACES = click.option("-A", "--all-namespaces", is_flag=True,
                              help="List across every namespace you may list (-n is then ignored).")

DRY_RUN = click.option("--dry-run", type=click.Choice(["none", "client", "server"]), default="none",
                       show_default=True,
                       help="client: print the object that would be sent, with no cluster at all; server: "
                            "let the API server and the admission webhook judge it, store nothing.")


@dataclass(frozen=True)
class View:
    """What ``list``, ``get`` and ``describe`` show of one kind."""

    resource: Resource
    command: str                              # the CLI group: "service-token"
    noun: str                                 # in messages: "service token"
    item: Callable[[dict], dict]              # the fields of -o json|yaml (never a token or its hash)
    headers: Sequence[str]
    row: Callable[[dict], list]
    wide_headers: Sequence[str] = ()
    wide_row: Callable[[dict], list] = lambda obj: []
    status_column: str | None = None
    by_id: bool = False                       # tokens are found by their ID too


def token_id(obj: dict) -> str | None:
    return (obj.get("status") or {}).get("tokenId")


def ready_condition(obj: dict) -> dict:
    """The Ready condition ({} before the operator has seen the object)."""
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition
    return {}


def object_name(resource: Resource, name: str) -> str:
    """``servicetoken.tokenwarden.io/ci``, as ``kubectl get -o name`` prints it."""
    return f"{resource.kind.lower()}.{GROUP}/{name}"


def print_objects(view: View, objects: list[dict], output: str, all_namespaces: bool = False) -> None:
    """Print ``objects`` in the ``-o`` format; with ``all_namespaces`` the table starts with NAMESPACE."""
    if output in ("json", "yaml"):
        print_data([view.item(obj) for obj in objects], output)
        return
    if output == "name":
        for obj in objects:
            click.echo(object_name(view.resource, obj["metadata"]["name"]))
        return
    wide = output == "wide"
    headers = [*(["NAMESPACE"] if all_namespaces else []), *view.headers, *(view.wide_headers if wide else [])]
    rows = [[*([obj["metadata"]["namespace"]] if all_namespaces else []), *view.row(obj),
             *(view.wide_row(obj) if wide else [])] for obj in objects]
    print_table(headers, rows, status_column=view.status_column)


def print_change(resource: Resource, name: str, data: dict, output: str | None, line: str) -> None:
    """What create and rotate print: ``line`` for people, or ``data`` (json, yaml), or the kind/name."""
    if output == "name":
        click.echo(object_name(resource, name))
    elif output:
        print_data(data, output)
    else:
        click.echo(line)


def show_dry_run(kube: Kube, resource: Resource, name: str, spec: dict, dry_run: str, output: str | None) -> None:
    """``create --dry-run``: the manifest (client) or the object as the server would store it
    (server); created nowhere. A manifest names its namespace only when -n was given."""
    if dry_run == "server":
        body = kube.create(resource, name, spec, dry_run=True)
        body["metadata"].pop("managedFields", None)
    else:
        body = manifest(resource, name, spec, kube.namespace if kube.namespace_given else None)
    print_change(resource, name, body, output,
                 f"{object_name(resource, name)} created ({'server ' if dry_run == 'server' else ''}dry run)")


def find_object(kube: Kube, view: View, name: str) -> dict:
    """The object named ``name`` (for tokens: or with that ID), or an error naming the namespace."""
    obj = kube.get(view.resource, name)
    if obj is not None:
        return obj
    if view.by_id:
        for obj in kube.list(view.resource):
            if token_id(obj) == name:
                return obj
        raise click.ClickException(f"no {view.noun} with ID or name {name!r} in namespace {kube.namespace!r}")
    raise click.ClickException(f"no {view.noun} {name!r} in namespace {kube.namespace!r} "
                               f"(tokenwarden {view.command} list -n {kube.namespace} shows what there is)")


def name_argument(view: View, metavar: str = "NAME"):
    """The positional NAME (ID_OR_NAME for tokens), with completion from the cluster."""
    return click.argument("name", metavar=metavar, callback=lambda ctx, param, value: require_name(value, metavar),
                          shell_complete=complete_names(view.resource, token_id if view.by_id else lambda o: None))


def list_command(view: View, help: str) -> click.Command:
    """``list``: the kind's objects in this namespace, or in every one with -A."""

    @click.command("list", help=help)
    @OUTPUT
    @ALL_NAMESPACES
    @kube_options
    def command(kube: Kube, output: str, all_namespaces: bool) -> None:
        print_objects(view, kube.list(view.resource, all_namespaces), output, all_namespaces)

    return command


def get_command(view: View) -> click.Command:
    """``get NAME``: one object, as ``list`` prints it, or as one json or yaml mapping."""
    what = "ID_OR_NAME" if view.by_id else "NAME"
    example = "107484341630693" if view.by_id else "my-" + view.command

    @click.command("get", help=f"Show the {view.noun} {what}: the columns of list (wide: more), its "
                               f"kind/name, or its fields as json or yaml.\n\n\b\nExamples:\n"
                               f"  tokenwarden {view.command} get {example}\n"
                               f"  tokenwarden {view.command} get {example} -o yaml")
    @name_argument(view, what)
    @OUTPUT
    @kube_options
    def command(kube: Kube, name: str, output: str) -> None:
        obj = find_object(kube, view, name)
        if output in ("json", "yaml"):
            print_data(view.item(obj), output)
        else:
            print_objects(view, [obj], output)

    return command
