"""The `token` group; `token check`: is a string a well-formed tokenwarden token? Offline, no cluster."""
from __future__ import annotations

import sys

import click

from tokenwarden.cli._probe import probe
from tokenwarden.tokens import TokenFormatError, parse_token

_VERDICT = "not a tokenwarden token: "


def check_token(text: str) -> tuple[bool, str]:
    """``(True, "valid … (prefix p)")`` for a well-formed token, else ``(False, "not a … : why")``.

    Form and checksum only: whether the cluster knows the token is the authenticator's question.
    """
    try:
        parsed = parse_token(text.strip())
    except TokenFormatError as exc:
        reason = str(exc)
        return False, reason if reason.startswith(_VERDICT) else _VERDICT + reason
    return True, f"valid tokenwarden token (prefix {parsed.prefix})"


@click.group("token")
def token() -> None:
    """Check a token string offline (check), or send a mounted token to the authenticator
    as an agent does (probe); neither needs access to the Kubernetes API. Revoke a leaked
    token by its value (revoke --leaked).

    \b
    Examples:
      tokenwarden token check twst_…
      kubectl get secret ci -o jsonpath='{.data.token}' | base64 -d | tokenwarden token check -
      tokenwarden token probe --token-file /var/run/tokenwarden/token --url http://authn:8080/verify
      tokenwarden token revoke --leaked < leaked.txt
    """


@token.command("check")
@click.argument("value", metavar="TOKEN")
def token_check(value: str) -> None:
    """Tell whether TOKEN (or stdin, with -) has a tokenwarden token's form and checksum.

    For secret scanners and scripts: exit 0 for a well-formed token, 1 otherwise.
    Nothing is sent anywhere, and the token is never printed. Reading it from stdin
    keeps it out of the shell history.

    \b
    Examples:
      $ tokenwarden token check - < token.txt
      valid tokenwarden token (prefix twst)
      $ tokenwarden token check twst_nope
      not a tokenwarden token: expected <prefix>_<43 base62 characters><6 base62 checksum>
    """
    valid, message = check_token(sys.stdin.read() if value == "-" else value)
    if not valid:
        click.echo(message, err=True)
        sys.exit(1)
    click.echo(message)


token.add_command(probe)
