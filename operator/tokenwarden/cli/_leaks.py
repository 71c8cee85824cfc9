"""`token revoke --leaked` (also `service-token revoke --leaked`, `ingestion-api-key revoke
--leaked`): the leak response in one command.

The value is read from stdin, never from the command line (shell history, process lists).
The credential holding it is found by hash in every namespace the caller may list, and the
leak recorded on it (annotation tokenwarden.io/leaked, the hash only): the authenticator
refuses the value from the moment its watch sees that, operator or not; the operator mints
a successor into the same Secret with no overlap and rolls the restart targets.
"""
from __future__ import annotations

import sys
import time

import click

from tokenwarden import policies
from tokenwarden.cli._kubeopts import Kube, kube_options
from tokenwarden.cli._output import done
from tokenwarden.cli._params import Duration
from tokenwarden.kube import ApiPermanentError, ApiTransientError
from tokenwarden.kube._errors import ApiForbidden
from tokenwarden.kube._import_key import ImportKeyInvalid, read_import_key
from tokenwarden.kube._leaks import KINDS, Leaked, find_leaked, record_leak
from tokenwarden.kube._objects import get_object
from tokenwarden.tokens import fits_a_header, hash_token, hmac_token

DEFAULT_IMPORT_KEY = "tokenwarden/tokenwarden-import-key"


def read_values(stream=None) -> list[str]:
    """The leaked values: one per line of stdin, or asked for without echo at a terminal."""
    stream = stream or sys.stdin
    if stream.isatty():
        lines = [click.prompt("Leaked token (not shown)", hide_input=True, err=True)]
    else:
        lines = stream.read().splitlines()
    values = [line.strip() for line in lines if line.strip()]
    if not values:
        raise click.UsageError("no token on stdin: pipe the leaked value in, e.g. "
                               "tokenwarden token revoke --leaked < leaked.txt")
    for number, value in enumerate(values, 1):
        if not fits_a_header(value):
            raise click.UsageError(f"line {number} of stdin is not a token (one line of printable ASCII "
                                   "without spaces, at most 4096 characters): give one token per line")
    return values


def _import_key(kube: Kube, where: str) -> tuple[bytes | None, str | None]:
    """The cluster's import key, or None and why imported keys cannot be searched."""
    namespace, _, name = where.partition("/")
    try:
        key = read_import_key(kube.core, namespace, name)
    except ApiForbidden:
        return None, (f"imported keys were not searched: you may not read the import key Secret {where} "
                      "(their hashes are HMACs under it); a cluster admin can run this command, or delete "
                      "the imported ServiceToken")
    except (ApiPermanentError, ImportKeyInvalid) as exc:
        return None, f"imported keys were not searched: {exc}"
    if key is None:
        return None, None  # no import key: nothing was ever imported under one
    return key, None


def _search(kube: Kube, hashes: list[str]) -> tuple[list[Leaked], list[str]]:
    """Credentials holding one of ``hashes`` in every namespace the caller may list (else in
    its namespace), and notes on what could not be searched."""
    found, notes = [], []
    for resource in KINDS:
        try:
            found += find_leaked(kube.custom, hashes, [None], [resource])
        except ApiForbidden:
            notes.append(f"you may not list {resource.plural} in all namespaces: searched namespace "
                         f"{kube.namespace} only (give -n for another)")
            try:
                found += find_leaked(kube.custom, hashes, [kube.namespace], [resource])
            except ApiForbidden:
                notes.append(f"you may not list {resource.plural} in namespace {kube.namespace} either")
    return found, notes


def _wait_for_successor(kube: Kube, leaked: Leaked, timeout: float) -> dict | None:
    """The credential once the operator has replaced the leaked value; None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        body = get_object(kube.custom, leaked.resource, leaked.namespace, leaked.name)
        if body is None:
            return None
        status = body.get("status") or {}
        annotation = (body["metadata"].get("annotations") or {}).get(policies.LEAKED_ANNOTATION)
        if not policies.leak_pending(annotation, status.get("tokenHash"), status.get("previousTokenHash")):
            return body
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.25)


def revoke_leaked(kube: Kube, values: list[str], import_key_secret: str, timeout: float) -> bool:
    """Revoke each value and report; False when some value was found nowhere."""
    key, key_note = _import_key(kube, import_key_secret)
    all_found = True
    for number, value in enumerate(values, 1):
        hashes = [hash_token(value)] + ([hmac_token(value, key)] if key else [])
        found, notes = _search(kube, hashes)
        which = f"token {number} of {len(values)}" if len(values) > 1 else "the token"
        if not found:
            all_found = False
            for note in notes + ([key_note] if key_note else []):
                click.echo(f"note: {note}", err=True)
            click.echo(f"{which}: no ServiceToken or IngestionAPIKey you can see holds this value "
                       "(unknown, or already replaced)", err=True)
            continue
        for leaked in found:
            _revoke_one(kube, leaked, timeout)
    return all_found


def _revoke_one(kube: Kube, leaked: Leaked, timeout: float) -> None:
    ident = f"{leaked.what} (token id {leaked.token_id or '-'})"
    if record_leak(kube.custom, leaked) is None:
        done(f"Leaked token already replaced: {ident} no longer holds it; it is refused")
        return
    done(f"Leaked token revoked: {ident}: the authenticator refuses it from now on")
    if leaked.phase != "Active":
        click.echo(f"  it is {leaked.phase or 'not minted yet'}: no successor is minted for it")
        return
    if leaked.imported:
        click.echo("  an imported key is rotated by its owner: put a new value into its source Secret "
                   "(the leaked one stays refused)")
        return
    targets = ", ".join(leaked.restart_targets) or "none"
    body = _wait_for_successor(kube, leaked, timeout) if timeout > 0 else None
    if body is None:
        click.echo(f"  the operator has not minted the successor yet (waited {timeout:g}s; is it running?): "
                   f"when it runs it mints one into Secret {leaked.secret_name} with no overlap and restarts "
                   f"{targets}", err=True)
        return
    status = body.get("status") or {}
    click.echo(f"  successor minted into Secret {status.get('secretName') or leaked.secret_name} with no overlap "
               f"(token id {status.get('tokenId') or '-'}); restart targets rolled: {targets}")


@click.command("revoke")
@click.option("--leaked", is_flag=True, help="The value on stdin leaked: revoke it, mint a successor with no "
                                             "overlap, roll the restart targets. (Required.)")
@click.option("--import-key", "import_key_secret", default=DEFAULT_IMPORT_KEY, show_default=True,
              metavar="NAMESPACE/NAME", help="The cluster's import key Secret, to find imported keys by their HMAC.")
@click.option("--timeout", type=Duration(allow_zero=True), default="60s", show_default=True,
              help="How long to wait for the operator's successor, e.g. 30s (0: do not wait). The value is refused "
                   "whether or not the operator runs.")
@kube_options
def revoke(kube: Kube, leaked: bool, import_key_secret: str, timeout: float) -> None:
    """Revoke a leaked token, found by its value on stdin (one per line), in any namespace you can see.

    The value is refused at once (the authenticator does not wait for the operator);
    the operator mints a successor into the same Secret with no overlap and restarts the
    token's rotation.restartTargets. Who may do it: whoever may patch the token.

    \b
    Examples:
      tokenwarden token revoke --leaked < leaked.txt
      pbpaste | tokenwarden service-token revoke --leaked
    """
    if not leaked:
        raise click.UsageError("revoking by value is for leaked tokens: give --leaked (to revoke by ID or "
                               "name, use: tokenwarden service-token delete ID_OR_NAME)")
    if "/" not in import_key_secret:
        raise click.BadParameter("give the import key Secret as NAMESPACE/NAME", param_hint="--import-key")
    values = read_values()
    try:
        all_found = revoke_leaked(kube, values, import_key_secret, timeout)
    except ApiForbidden as exc:
        raise click.ClickException(f"{exc}: whoever may patch a token may revoke it") from None
    except (ApiPermanentError, ApiTransientError) as exc:
        raise click.ClickException(str(exc)) from None
    if not all_found:
        sys.exit(1)
