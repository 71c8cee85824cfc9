"""`token probe`: the reference agent. It does what real agents do with a mounted token
(re-read the file the kubelet updates, send it) and prints what the authenticator answered.
Only the token's hash is ever printed."""
from __future__ import annotations

import base64
import binascii
import http.client
import json
import signal
import ssl
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import click

from tokenwarden.durations import parse_duration
from tokenwarden.tokens import fits_a_header, hash_token

TIMEOUT = 5.0  # seconds per request
MAX_BODY = 64 * 1024
_QUOTE = set(' "=\\')


def parse_interval(text: str) -> float:
    """Seconds between attempts: ``5s``, ``1m``, ``1h30m`` (as durations elsewhere) or ``500ms``."""
    text = text.strip()
    if text.endswith("ms") and text[:-2].isdigit():
        seconds = int(text[:-2]) / 1000
    else:
        seconds = parse_duration(text).total_seconds()
    if seconds <= 0:
        raise ValueError(f"invalid interval {text!r}: it must be longer than 0")
    return seconds


def short_hash(token: str) -> str:
    """``sha256:`` and the first 12 hex digits of the token's hash: enough to tell tokens apart."""
    return hash_token(token)[:len("sha256:") + 12]


def format_line(**fields: object) -> str:
    """``key=value`` pairs in order (logfmt): values with spaces, quotes or ``=`` are quoted,
    None is left out."""
    def value(v: object) -> str:
        text = str(v)
        return json.dumps(text) if not text or _QUOTE & set(text) or not text.isprintable() else text
    return " ".join(f"{k}={value(v)}" for k, v in fields.items() if v is not None)


def jwt_times(token: str) -> dict[str, str]:
    """A JWT's ``iat`` and ``exp`` as UTC times, read without verifying it (a projected
    service-account token: they tell one version of the kubelet's file from the next).
    Nothing else of the token is read; empty for anything that is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return {}
    if not isinstance(claims, dict):
        return {}
    times = {}
    for claim in ("iat", "exp"):
        value = claims.get(claim)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**33:
            times[claim] = datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return times


def with_query(url: str, permission: str | None, project: str | None) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query) + [(k, v) for k, v in (("permission", permission), ("project", project)) if v]
    return urlunsplit(parts._replace(query=urlencode(query)))


def read_token(path: Path) -> tuple[str | None, str | None]:
    """``(token, None)``, or ``(None, problem)`` when the file gives no token to send."""
    try:
        token = path.read_text(encoding="utf-8", errors="replace").strip()
    except FileNotFoundError:
        return None, "token file missing"
    except OSError as exc:
        return None, f"token file unreadable: {type(exc).__name__}"
    return (token, None) if token else (None, "token file empty")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer to print, never a reason to send the token somewhere else."""

    def redirect_request(self, *args, **kwargs):
        return None


def make_opener(ca_file: str | None) -> urllib.request.OpenerDirector:
    context = ssl.create_default_context(cafile=ca_file)
    return urllib.request.build_opener(_NoRedirects, urllib.request.HTTPSHandler(context=context))


def _reason(body: bytes) -> str | None:
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    return answer.get("reason") if isinstance(answer, dict) else None


def _error(exc: BaseException) -> str:
    cause = exc.reason if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException) else exc
    return f"{type(cause).__name__}: {getattr(cause, 'strerror', None) or cause}"


def attempt(path: Path, url: str, scheme: str, opener: urllib.request.OpenerDirector) -> tuple[bool, str]:
    """Read the token file once, send the token once: ``(allowed, line to print)``."""
    token, problem = read_token(path)
    if token is None:
        return False, format_line(error=problem)
    digest = short_hash(token)
    if not fits_a_header(token):
        return False, format_line(error="token is not one line of printable ASCII without spaces", token=digest)
    version = {"token": digest, **jwt_times(token)}
    request = urllib.request.Request(url, headers={"Authorization": f"{scheme} {token}"})
    try:
        try:
            with opener.open(request, timeout=TIMEOUT) as response:
                status, headers, body = response.status, response.headers, response.read(MAX_BODY)
        except urllib.error.HTTPError as refused:
            with refused:
                status, headers, body = refused.code, refused.headers, refused.read(MAX_BODY)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        status, fields = None, {"error": _error(exc), **version}
    else:
        if status == 200:
            fields = {"status": status, **version, "subject": headers.get("X-Auth-Subject"),
                      "roles": headers.get("X-Auth-Roles"), "project": headers.get("X-Auth-Project"),
                      "via": headers.get("X-Auth-Via")}
        else:
            fields = {"status": status, **version, "reason": _reason(body)}
    # Whatever a server or an exception echoes, the token itself is never printed.
    fields = {k: None if v is None else str(v).replace(token, "<token>") for k, v in fields.items()}
    return status == 200, format_line(**fields)


def _interval(ctx: click.Context, param: click.Parameter, text: str) -> float:
    try:
        return parse_interval(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _url(ctx: click.Context, param: click.Parameter, url: str) -> str:
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise click.BadParameter(f"expected an http:// or https:// URL, got {url!r}")
    return url


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(0)


@click.command("probe")
@click.option("--token-file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The mounted token, e.g. /var/run/tokenwarden/token (re-read before every attempt).")
@click.option("--url", required=True, callback=_url, help="The authenticator's /verify URL (http or https).")
@click.option("--interval", default="5s", show_default=True, callback=_interval,
              help="Time between attempts: 5s, 1m, 500ms.")
@click.option("--permission", help="Ask for this permission (?permission=), e.g. write:profiles.")
@click.option("--project", help="Ask for this project (?project=).")
@click.option("--scheme", default="Bearer", show_default=True, help="Authorization scheme sent with the token.")
@click.option("--ca-file", type=click.Path(dir_okay=False),
              help="CA bundle for an https URL (default: the system's), e.g. the chart's CA ConfigMap "
                   "<release>-authenticator-ca mounted in the pod.")
@click.option("--once", is_flag=True, help="One attempt; exit 0 if it was accepted (200), 1 otherwise.")
def probe(token_file: Path, url: str, interval: float, permission: str | None, project: str | None,
          scheme: str, ca_file: str | None, once: bool) -> None:
    """Send a mounted token to the authenticator, as an agent does, and print each answer.

    Every interval the token file is read again (the kubelet updates a Secret mounted as
    a directory when the token rotates; a subPath mount never sees updates) and sent as
    `Authorization: <scheme> <token>`. One line per attempt, never the token itself:

    \b
      status=200 token=sha256:<12 hex> subject=<X-Auth-Subject> roles=<X-Auth-Roles> [via=<X-Auth-Via>]
      status=401 token=sha256:<12 hex> reason=<reason>
      error="<error class>: <message>" token=sha256:<12 hex>
      error="token file missing"

    A Kubernetes service-account token (a JWT) also gets its iat= and exp= claims,
    so each version of the file the kubelet refreshes can be told apart.

    SIGTERM ends it with exit 0.

    \b
    Examples:
      tokenwarden token probe --token-file /var/run/tokenwarden/token --permission write:profiles \\
        --url https://tokenwarden-authenticator.tokenwarden.svc/verify --ca-file /etc/tokenwarden/ca/ca.crt
      tokenwarden token probe --token-file token --url https://auth.example.com/verify --ca-file ca.crt --once
    """
    if ca_file and not Path(ca_file).is_file():
        raise click.BadParameter(f"{ca_file} is not a file. Mount the CA that signed the authenticator's "
                                 "certificate there (the chart publishes it in ConfigMap <release>-authenticator-ca, "
                                 "key ca.crt; copy it into this pod's namespace).", param_hint="--ca-file")
    url = with_query(url, permission, project)
    opener = make_opener(ca_file)
    previous = signal.signal(signal.SIGTERM, _terminate)  # also as PID 1, where SIGTERM has no default action
    try:
        while True:
            started = time.monotonic()
            allowed, line = attempt(token_file, url, scheme, opener)
            click.echo(line)
            if once:
                raise SystemExit(0 if allowed else 1)
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
