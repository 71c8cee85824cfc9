"""What every API-talking command shares: kubeconfig flags, errors, output style."""
from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import click
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError

from tokenwarden.kube import load_api_client
from tokenwarden.kube._resources import GROUP, VERSION

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def fancy() -> bool:
    """Emoji and colour only for a person at a terminal, and never with NO_COLOR."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def done(message: str) -> None:
    """``✅ message`` on a terminal, the bare message otherwise (scripts read the same words)."""
    click.echo(f"✅ {message}" if fancy() else message)


@dataclass
class Kube:
    api: client.ApiClient
    namespace: str

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def create(self, plural: str, kind: str, name: str, spec: dict) -> dict:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, body)

    def list(self, plural: str) -> list[dict]:
        return self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, plural)["items"]

    def delete(self, plural: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name)

    def patch(self, plural: str, name: str, body: dict) -> dict:
        return self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name, body)


def _default_namespace(kubeconfig: str | None, context: str | None) -> str:
    try:
        _, current = config.list_kube_config_contexts(config_file=kubeconfig or os.environ.get("KUBECONFIG"))
        if context:
            contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig or os.environ.get("KUBECONFIG"))
            current = next((c for c in contexts if c["name"] == context), current)
        return (current or {}).get("context", {}).get("namespace") or "default"
    except (ConfigException, OSError, TypeError):
        return "default"


def kube_options(func: Callable) -> Callable:
    """--kubeconfig, --context and -n as kubectl has them; passes ``kube: Kube``."""

    @click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None,
                  help="Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).")
    @click.option("--context", default=None, help="Kubeconfig context to use.")
    @click.option("-n", "--namespace", default=None, help="Namespace (default: the context's, else default).")
    @functools.wraps(func)
    def wrapper(*args, kubeconfig, context, namespace, **kwargs):
        if kubeconfig and not os.path.isfile(kubeconfig):
            raise click.ClickException(f"kubeconfig {kubeconfig} does not exist: pass an existing --kubeconfig")
        try:
            api = load_api_client(kubeconfig, context)
        except (ConfigException, OSError) as exc:
            raise click.ClickException(f"{exc}".splitlines()[0]) from exc
        kube = Kube(api, namespace or _default_namespace(kubeconfig, context))
        try:
            return func(*args, kube=kube, **kwargs)
        except ApiException as exc:
            raise click.ClickException(server_message(exc)) from exc
        except HTTPError as exc:
            raise click.ClickException(
                f"cannot reach the Kubernetes API server at {api.configuration.host}: "
                f"{type(exc).__name__}; check --kubeconfig and --context") from exc

    return wrapper


def server_message(exc: ApiException) -> str:
    try:
        message = json.loads(exc.body or "{}").get("message") or exc.reason
    except ValueError:
        message = exc.reason
    if exc.status == 404:
        return f"not found: {message}"
    if exc.status in (401, 403):
        return f"the API server refused the request ({exc.status}): {message}"
    return str(message)


def require_dns_label(name: str, what: str = "--name") -> str:
    if not DNS_LABEL.match(name):
        raise click.BadParameter(
            f"{name!r} is not a valid name: use at most 63 lower-case letters, digits and '-', "
            "starting and ending with a letter or digit", param_hint=what)
    return name


def split_roles(text: str | None) -> list[str] | None:
    if text is None:
        return None
    roles = [r.strip() for r in text.split(",") if r.strip()]
    if not roles:
        raise click.BadParameter("give at least one role, comma-separated, e.g. reader,writer",
                                 param_hint="--roles")
    return roles


def print_table(headers: list[str], rows: Iterable[list[str]]) -> None:
    """The seed CLI's table: columns padded and joined with ' | '."""
    rows = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return " | ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    click.echo(line(headers))
    for row in rows:
        click.echo(line(row))


def print_data(items: list[dict], output: str) -> None:
    if output == "json":
        click.echo(json.dumps(items, indent=2))
    else:
        click.echo(yaml.safe_dump(items, sort_keys=False), nl=False)


OUTPUT = click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table",
                      show_default=True, help="Output format.")
