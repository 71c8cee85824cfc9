"""What every command that talks to the API server shares: kubectl's --kubeconfig,
--context and -n options, the client, and API errors turned into one readable line."""
from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable

import click
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError

from tokenwarden.kube import load_api_client
from tokenwarden.kube._resources import API_VERSION, GROUP, VERSION, Resource

# Names of tokens become the value of the Secret's tokenwarden.io/token label, and
# label values stop at 63 characters: so a DNS label, not the longer subdomain.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class Kube:
    """An API client and the namespace the command works in.

    The client is made on first use, so that a command checks its arguments before it
    loads credentials: a bad name is reported as such even where no kubeconfig exists.
    """

    def __init__(self, api: client.ApiClient | None, namespace: str, *,
                 connect: Callable[[], client.ApiClient] | None = None, namespace_given: bool = True) -> None:
        self._api, self._connect = api, connect
        self.namespace = namespace
        self.namespace_given = namespace_given  # -n was given (a manifest then names it)

    @property
    def api(self) -> client.ApiClient:
        if self._api is None:
            self._api = self._connect()
        return self._api

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def create(self, resource: Resource, name: str, spec: dict, dry_run: bool = False) -> dict:
        extra = {"dry_run": "All"} if dry_run else {}
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, resource.plural,
                                                           manifest(resource, name, spec), **extra)

    def list(self, resource: Resource, all_namespaces: bool = False) -> list[dict]:
        if all_namespaces:
            items = self.custom.list_cluster_custom_object(GROUP, VERSION, resource.plural)["items"]
            return sorted(items, key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"]))
        return self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, resource.plural)["items"]

    def get(self, resource: Resource, name: str) -> dict | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, resource.plural, name)
        except ApiException as exc:
            if exc.status == 404 and "could not find the requested resource" not in (exc.body or ""):
                return None
            raise

    def delete(self, resource: Resource, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, resource.plural, name)

    def patch(self, resource: Resource, name: str, body: dict) -> dict:
        return self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, resource.plural,
                                                          name, body)


def manifest(resource: Resource, name: str, spec: dict, namespace: str | None = None) -> dict:
    """The object as ``kubectl apply -f`` takes it."""
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": API_VERSION, "kind": resource.kind, "metadata": metadata, "spec": spec}


def default_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace of the kubeconfig context in use (as kubectl picks it), else ``default``."""
    try:
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
    except (ConfigException, OSError, TypeError, ValueError, yaml.YAMLError):
        return "default"
    if context:
        current = next((c for c in contexts or [] if c.get("name") == context), current)
    return ((current or {}).get("context") or {}).get("namespace") or "default"


def server_message(exc: ApiException) -> str:
    """The API server's (or an admission webhook's) own words, with a hint where one helps."""
    try:
        body = json.loads(exc.body or "{}")
        message = body.get("message") if isinstance(body, dict) else None
    except ValueError:
        message = None
    message = message or exc.reason or f"HTTP {exc.status}"
    if exc.status == 401:
        return f"the API server did not accept the credentials ({message}): check --kubeconfig and --context"
    if exc.status == 403 and "admission webhook" not in message:
        return f"the API server refused the request (403): {message}"
    if exc.status == 409 and body_reason(exc) == "AlreadyExists":
        return f"{message}: choose another name, or delete the existing one first"
    if exc.status == 404 and "could not find the requested resource" in message:
        return (f"{message}: the tokenwarden CRDs are not installed in this cluster "
                "(install the Helm chart, or kubectl apply -f crds/)")
    return message


def body_reason(exc: ApiException) -> str | None:
    """The machine-readable ``reason`` of the server's Status body (AlreadyExists, NotFound, …)."""
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        return None
    return body.get("reason") if isinstance(body, dict) else None


def _check_namespace(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _DNS_LABEL.match(value):
        raise click.BadParameter(f"{value!r} is not a namespace name: use at most 63 lower-case letters, "
                                 "digits and '-', starting and ending with a letter or digit", ctx, param)
    return value


def kube_options(func: Callable) -> Callable:
    """Add --kubeconfig, --context and -n as kubectl has them; call ``func(kube=Kube, ...)``.

    Credentials are loaded when the command first talks to the server, after its own
    checks. API errors and an unreachable server become one line on stderr and exit
    status 1.
    """

    @click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None,
                  help="Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).")
    @click.option("--context", default=None, help="Kubeconfig context to use (default: the current one).")
    @click.option("-n", "--namespace", default=None, callback=_check_namespace,
                  help="Namespace (default: the context's namespace, else default).")
    @functools.wraps(func)
    def wrapper(*args, kubeconfig: str | None, context: str | None, namespace: str | None, **kwargs):
        kube = Kube(None, namespace or default_namespace(kubeconfig, context),
                    connect=lambda: connect_api(kubeconfig, context), namespace_given=namespace is not None)
        try:
            return func(*args, kube=kube, **kwargs)
        except ApiException as exc:
            raise click.ClickException(server_message(exc)) from exc
        except HTTPError as exc:
            raise click.ClickException(
                f"cannot reach the Kubernetes API server at {kube.api.configuration.host} "
                f"({type(exc).__name__}): check --kubeconfig and --context") from exc

    return wrapper


def connect_api(kubeconfig: str | None, context: str | None) -> client.ApiClient:
    """A client for the kubeconfig and context, or an error naming what to pass."""
    if kubeconfig and not os.path.isfile(kubeconfig):
        raise click.ClickException(f"kubeconfig {kubeconfig} does not exist: pass an existing --kubeconfig")
    found = kubeconfig or os.environ.get("KUBECONFIG") or os.path.exists(os.path.expanduser("~/.kube/config"))
    if not found and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        raise click.ClickException("no kubeconfig: $KUBECONFIG is not set, ~/.kube/config does not exist and this "
                                   "is not a pod in a cluster; pass --kubeconfig or set KUBECONFIG")
    try:
        return load_api_client(kubeconfig, context)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise click.ClickException(f"the kubeconfig {kubeconfig or os.environ.get('KUBECONFIG') or '~/.kube/config'} "
                                   f"is not valid YAML{where}: fix it, or pass another --kubeconfig") from None
    except (ConfigException, OSError) as exc:
        if context and f"Expected object with name {context} " in str(exc):
            raise click.ClickException(f"the kubeconfig has no context {context!r}: kubectl config get-contexts "
                                       "lists those it has") from None
        raise click.ClickException(str(exc).splitlines()[0]) from exc


def connect(kubeconfig: str | None, context: str | None, namespace: str | None) -> Kube:
    """A client for the kubeconfig and context, in ``namespace`` or the context's."""
    return Kube(connect_api(kubeconfig, context), namespace or default_namespace(kubeconfig, context))


def require_name(name: str, param_hint: str = "--name") -> str:
    """``name`` if it is a DNS label; else a usage error saying what a name may hold."""
    if not _DNS_LABEL.match(name):
        raise click.BadParameter(
            f"{name!r} is not a valid name: use at most 63 lower-case letters, digits and '-', "
            "starting and ending with a letter or digit", param_hint=param_hint)
    return name


def complete_names(resource: Resource, key: Callable[[dict], str | None] = lambda obj: None):
    """Shell completion for an argument naming a ``resource``: names (and ``key(obj)``, e.g. IDs)."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
        try:
            kube = connect(ctx.params.get("kubeconfig"), ctx.params.get("context"), ctx.params.get("namespace"))
            items = kube.custom.list_namespaced_custom_object(GROUP, VERSION, kube.namespace, resource.plural,
                                                              _request_timeout=3)["items"]
        except Exception:  # completion must never print a traceback into the shell
            return []
        words = []
        for obj in items:
            words += [w for w in (obj["metadata"]["name"], key(obj)) if w and w.startswith(incomplete)]
        return words

    return complete
