"""``service-token rotate`` and ``ingestion-api-key rotate``: the tokenwarden.io/rotate
annotation written for the user, as ``cmctl renew`` does for a certificate.

The operator answers a request by recording its value in ``status.rotationRequest`` in
the same write as the new ``status.tokenHash``; the command waits for exactly that. The
new token goes to the Secret only: the command prints the token's ID and its new hash.
"""
from __future__ import annotations

from datetime import datetime, timezone

import click

from tokenwarden import policies
from tokenwarden.cli._kubeopts import Kube, kube_options
from tokenwarden.cli._output import CHANGE_OUTPUT, decorated
from tokenwarden.cli._params import Duration
from tokenwarden.cli._tokens import INGESTION_KEY_VIEW, SERVICE_TOKEN, SERVICE_TOKEN_VIEW, KeyKind, ready_message, \
    watch_object
from tokenwarden.cli._views import find_object, name_argument, print_change


def _check_request(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    problem = policies.rotate_request_problem(value)
    if value is not None and not value.strip():
        problem = "the value is empty: give a date or a ticket number, or leave --request out"
    if problem:
        raise click.BadParameter(problem, ctx, param)
    return value


def request_value(now: datetime) -> str:
    """The annotation's value when none is given: the time of the request, unique enough
    that a request is never mistaken for one answered before."""
    return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _not_rotatable(key: KeyKind, obj: dict) -> str | None:
    """Why the operator would not rotate ``obj`` (so that the command need not wait to hear it)."""
    name, status = obj["metadata"]["name"], obj.get("status") or {}
    if status.get("phase") != "Active":
        why = ready_message(obj)
        return (f"{key.noun} {name} is {status.get('phase') or 'not minted yet'}: only an Active one is rotated"
                + (f" ({why})" if why else ""))
    if (obj.get("spec") or {}).get("import"):
        return (f"{key.noun} {name} holds an imported key, which its owner rotates: put a new value into its "
                "source Secret")
    return None


def rotate(kube: Kube, key: KeyKind, id_or_name: str, value: str, timeout: float) -> dict:
    """Ask for a rotation and wait for the operator's answer; the token's status after it."""
    obj = find_object(kube, SERVICE_TOKEN_VIEW if key is SERVICE_TOKEN else INGESTION_KEY_VIEW, id_or_name)
    name, status = obj["metadata"]["name"], obj.get("status") or {}
    problem = _not_rotatable(key, obj)
    if problem:
        raise click.ClickException(problem)
    mark = policies.rotation_request_mark(value)
    if status.get("rotationRequest") == mark:
        raise click.UsageError(f"the request {value!r} was answered already: give another --request value")
    old_hash = status.get("tokenHash")
    patched = kube.patch(key.resource, name, {"metadata": {"annotations": {policies.ROTATE_ANNOTATION: value}}})
    answered = watch_object(kube, key.resource, patched,
                            lambda o: (o.get("status") or {}).get("rotationRequest") == mark, timeout,
                            f"the {key.resource.kind} {name} was deleted before it was rotated")
    after = answered.get("status") or {}
    if after.get("rotationRequest") != mark:
        raise click.ClickException(
            f"{key.noun} {name} was not rotated within {timeout:g}s (is the tokenwarden operator running?); the "
            f"request stays on it ({policies.ROTATE_ANNOTATION}={value}) and is acted on when the operator runs")
    if after.get("tokenHash") == old_hash:
        conditions = {c.get("type"): c for c in after.get("conditions") or []}
        why = (conditions.get("RotationRequest") or {}).get("message") or ready_message(answered)
        raise click.ClickException(f"{key.noun} {name} was not rotated: {why or 'no reason given'}")
    return answered


def rotate_command(key: KeyKind) -> click.Command:
    view = SERVICE_TOKEN_VIEW if key is SERVICE_TOKEN else INGESTION_KEY_VIEW

    @click.command("rotate", help=f"""Rotate the {key.noun} ID_OR_NAME now: a successor is minted into its Secret.

    Writes the annotation {policies.ROTATE_ANNOTATION} and waits until the operator has
    answered it. The previous token stays valid for the overlap the operator is configured
    with; agents that re-read the mounted Secret pick up the new one. Prints the ID and the
    new hash, never the token (it is in the Secret).

    \b
    Examples:
      $ tokenwarden {key.command} rotate my-{key.command}
      {key.noun[0].upper()}{key.noun[1:]} rotated: 107484341630693 sha256:9f2c…
      $ tokenwarden {key.command} rotate my-{key.command} --request CHANGE-1234 -o json
    """)
    @name_argument(view, "ID_OR_NAME")
    @click.option("--request", "value", callback=_check_request, metavar="VALUE",
                  help=f"The annotation's value, e.g. a ticket number (default: the time now, UTC); at most "
                       f"{policies.ROTATE_REQUEST_MAX} characters.")
    @click.option("--timeout", type=Duration(), default="60s", show_default=True,
                  help="How long to wait for the operator, e.g. 30s or 2m.")
    @CHANGE_OUTPUT
    @kube_options
    def command(kube: Kube, name: str, value: str | None, timeout: float, output: str | None) -> None:
        obj = rotate(kube, key, name, value or request_value(datetime.now(timezone.utc)), timeout)
        status = obj["status"]
        print_change(key.resource, obj["metadata"]["name"], {"id": status.get("tokenId"),
                                                              "tokenHash": status.get("tokenHash")}, output,
                     decorated(f"{key.noun[0].upper()}{key.noun[1:]} rotated: {status.get('tokenId')} "
                               f"{status.get('tokenHash')}"))

    return command
