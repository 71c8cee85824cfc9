"""`token probe`, the reference agent: its output lines, intervals, and runs against a stub
authenticator on 127.0.0.1 while the token file changes under it."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from click.testing import CliRunner

from tokenwarden.authn import Account, Authenticator, Identity, TokenIndex
from tokenwarden.cli import cli
from tokenwarden.cli._probe import (
    attempt,
    format_line,
    jwt_times,
    make_opener,
    parse_interval,
    read_token,
    short_hash,
    with_query,
)
from tokenwarden.config import Settings
from tokenwarden.policies import Binding
from tokenwarden.tls import create_ca, issue_serving_cert
from tokenwarden.tokens import hash_token, mint_token


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def write(path: Path, text: str) -> None:
    """Replace the file at once, as the kubelet swaps a Secret volume's contents."""
    temporary = path.with_name(path.name + ".new")
    temporary.write_text(text)
    os.replace(temporary, path)


class Stub:
    """Answers each request with the next of ``answers`` (status, headers, body), the last one
    again and again; records each request's path and Authorization header."""

    def __init__(self, answers, on_request=None, tls=None):
        self.answers, self.on_request, self.requests = list(answers), on_request, []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                stub.requests.append((self.path, self.headers.get("Authorization")))
                if stub.on_request:  # before answering, so the client's next attempt sees it
                    stub.on_request(len(stub.requests))
                status, headers, body = stub.answers.pop(0) if len(stub.answers) > 1 else stub.answers[0]
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(tls.cert, tls.key)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"http{'s' if tls else ''}://127.0.0.1:{self.server.server_address[1]}/verify"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


ALLOWED = (200, {"X-Auth-Subject": "tokenwarden:observability:serviceaccount:profiler",
                 "X-Auth-Roles": "profile-writer"},
           b'{"allowed": true, "subject": "tokenwarden:observability:serviceaccount:profiler"}')
UNKNOWN = (401, {"WWW-Authenticate": "Bearer"}, b'{"allowed": false, "reason": "unknown"}')


@pytest.fixture
def stub():
    servers = []

    def start(answers, on_request=None, tls=None):
        servers.append(Stub(answers, on_request, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


# -- pure parts ----------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [("5s", 5), ("1m", 60), ("1h30m", 5400), ("250ms", 0.25), (" 2s ", 2)])
def test_intervals(text, seconds):
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["5", "0s", "0ms", "-1s", "1.5s", "ms", "soon"])
def test_bad_intervals_are_refused(text):
    with pytest.raises(ValueError):
        parse_interval(text)
    result = CliRunner().invoke(cli, ["token", "probe", "--token-file", "t", "--url", "http://x/verify",
                                      "--interval", text])
    assert result.exit_code == 2 and "--interval" in result.output


def test_lines_are_logfmt():
    assert format_line(status=200, token="sha256:0123456789ab", subject="tokenwarden:ns:a", roles="a,b@p",
                       project=None) == "status=200 token=sha256:0123456789ab subject=tokenwarden:ns:a roles=a,b@p"
    assert format_line(error="token file missing") == 'error="token file missing"'
    assert format_line(reason="", x='say "hi"', y="a=b") == 'reason="" x="say \\"hi\\"" y="a=b"'


def test_short_hash_is_the_start_of_the_tokens_hash():
    token = mint_token("twst")
    assert short_hash(token) == hash_token(token)[:19] and len(short_hash(token)) == len("sha256:") + 12


def test_query():
    assert with_query("http://a/verify", "write:profiles", None) == "http://a/verify?permission=write%3Aprofiles"
    assert with_query("http://a/verify?x=1", "read", "shop") == "http://a/verify?x=1&permission=read&project=shop"
    assert with_query("https://a/verify", None, None) == "https://a/verify"


def test_token_file_problems(tmp_path):
    assert read_token(tmp_path / "nope") == (None, "token file missing")
    assert read_token(tmp_path) == (None, "token file unreadable: IsADirectoryError")
    (tmp_path / "empty").write_text(" \n")
    assert read_token(tmp_path / "empty") == (None, "token file empty")
    (tmp_path / "token").write_text("twst_abc\n")
    assert read_token(tmp_path / "token") == ("twst_abc", None)


def test_urls_must_be_http_or_https():
    result = CliRunner().invoke(cli, ["token", "probe", "--token-file", "t", "--url", "ftp://x/verify"])
    assert result.exit_code == 2 and "http:// or https://" in result.output


# -- against a stub authenticator -----------------------------------------------

def test_once_exits_0_when_accepted_and_1_otherwise(stub, tmp_path):
    token = mint_token("twst")
    (tmp_path / "token").write_text(token + "\n")
    server = stub([ALLOWED, UNKNOWN])
    args = ["token", "probe", "--token-file", str(tmp_path / "token"), "--url", server.url, "--once",
            "--permission", "write:profiles", "--project", "shop"]
    accepted = CliRunner().invoke(cli, args)
    assert (accepted.exit_code, accepted.output) == (
        0, f"status=200 token={short_hash(token)} subject=tokenwarden:observability:serviceaccount:profiler "
           "roles=profile-writer\n")
    refused = CliRunner().invoke(cli, [*args, "--scheme", "ApiKey"])
    assert (refused.exit_code, refused.output) == (1, f"status=401 token={short_hash(token)} reason=unknown\n")
    assert [q for q, _ in server.requests] == ["/verify?permission=write%3Aprofiles&project=shop"] * 2
    assert [a for _, a in server.requests] == [f"Bearer {token}", f"ApiKey {token}"]

    (tmp_path / "token").unlink()
    missing = CliRunner().invoke(cli, args)
    assert (missing.exit_code, missing.output) == (1, 'error="token file missing"\n')


def test_connection_errors_name_the_error(tmp_path):
    token = mint_token("twst")
    (tmp_path / "token").write_text(token)
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as closed:
        port = closed.server_address[1]
    allowed, line = attempt(tmp_path / "token", f"http://127.0.0.1:{port}/verify", "Bearer", make_opener(None))
    assert not allowed
    assert line == f'error="ConnectionRefusedError: Connection refused" token={short_hash(token)}'


def test_the_token_is_never_printed_whatever_the_server_or_file_holds(stub, tmp_path):
    token = mint_token("twst")
    (tmp_path / "token").write_text(token)
    echo = (403, {"X-Auth-Subject": token}, json.dumps({"reason": f"no permission for {token}"}).encode())
    server = stub([echo])
    allowed, line = attempt(tmp_path / "token", server.url, "Bearer", make_opener(None))
    assert not allowed and token not in line
    assert line == f'status=403 token={short_hash(token)} reason="no permission for <token>"'

    # A scheme that makes the header invalid: the client library's complaint quotes the header.
    allowed, line = attempt(tmp_path / "token", server.url, "Bear\ner", make_opener(None))
    assert not allowed and token not in line and line.startswith('error="ValueError: ')

    # Two lines in the file: refused before anything is sent.
    (tmp_path / "token").write_text(f"{token}\n{token}\n")
    allowed, line = attempt(tmp_path / "token", server.url, "Bearer", make_opener(None))
    assert not allowed and token not in line and "not one line" in line
    assert len(server.requests) == 1


def _jwt(claims: dict) -> str:
    """A JWT-shaped string (header, claims, a made-up signature), as a projected token looks."""
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
    return f"{part({'alg': 'RS256', 'kid': 'k'})}.{part(claims)}.c2lnbmF0dXJl"


@pytest.mark.parametrize("token, times", [
    (_jwt({"iat": 1795000000, "exp": 1795003600, "sub": "system:serviceaccount:ns:agent"}),
     {"iat": "2026-11-18T11:06:40Z", "exp": "2026-11-18T12:06:40Z"}),
    (_jwt({"iat": 1795000000}), {"iat": "2026-11-18T11:06:40Z"}),
    (_jwt({"iat": "soon", "exp": True}), {}),
    (_jwt(["not", "claims"]), {}),
    ("a.b!.c", {}),
    (mint_token("twst"), {}),
], ids=["iat-and-exp", "iat-only", "wrong-types", "not-claims", "not-base64", "opaque-token"])
def test_jwt_times_read_iat_and_exp_only(token, times):
    assert jwt_times(token) == times


def test_a_service_account_token_is_named_by_its_hash_and_times(stub, tmp_path):
    """Each version of a kubelet-refreshed projected token is told apart, and nothing of it
    but its hash and its iat and exp is printed (not its subject, not the token)."""
    token = _jwt({"iat": 1795000000, "exp": 1795003600, "sub": "system:serviceaccount:ns:agent"})
    (tmp_path / "token").write_text(token + "\n")
    workload = (200, {**ALLOWED[1], "X-Auth-Via": "workload:agent"}, ALLOWED[2])
    server = stub([workload, UNKNOWN])
    allowed, line = attempt(tmp_path / "token", server.url, "Bearer", make_opener(None))
    assert allowed and line == (f"status=200 token={short_hash(token)} iat=2026-11-18T11:06:40Z "
                                "exp=2026-11-18T12:06:40Z subject=tokenwarden:observability:serviceaccount:profiler "
                                "roles=profile-writer via=workload:agent")
    allowed, line = attempt(tmp_path / "token", server.url, "Bearer", make_opener(None))
    assert not allowed and line == (f"status=401 token={short_hash(token)} iat=2026-11-18T11:06:40Z "
                                    "exp=2026-11-18T12:06:40Z reason=unknown")
    assert "system:serviceaccount" not in line and token.split(".")[1] not in line


def test_https_with_a_ca_file(stub, tmp_path):
    token = mint_token("twst")
    (tmp_path / "token").write_text(token)
    ca = create_ca(tmp_path, "probe-test-ca")
    server = stub([ALLOWED], tls=issue_serving_cert(ca, tmp_path, "tls", ["127.0.0.1"]))
    args = ["token", "probe", "--token-file", str(tmp_path / "token"), "--url", server.url, "--once"]
    trusted = CliRunner().invoke(cli, [*args, "--ca-file", str(ca.cert)])
    assert (trusted.exit_code, trusted.output.split()[0]) == (0, "status=200")
    untrusted = CliRunner().invoke(cli, args)
    assert untrusted.exit_code == 1 and untrusted.output.startswith('error="SSLCertVerificationError: ')
    assert token not in trusted.output + untrusted.output
    missing = CliRunner().invoke(cli, [*args, "--ca-file", str(tmp_path / "absent" / "ca.crt")])
    assert missing.exit_code == 2 and not server.requests[1:]
    assert f"Invalid value for --ca-file: {tmp_path / 'absent' / 'ca.crt'} is not a file" in missing.output
    assert "<release>-authenticator-ca" in missing.output


def test_redirects_are_not_followed(stub, tmp_path):
    (tmp_path / "token").write_text(mint_token("twst"))
    elsewhere = stub([ALLOWED])
    server = stub([(302, {"Location": elsewhere.url}, b"")])
    allowed, line = attempt(tmp_path / "token", server.url, "Bearer", make_opener(None))
    assert not allowed and line.startswith("status=302 ")
    assert elsewhere.requests == []


def test_the_running_probe_rereads_the_rotated_file_and_ends_on_sigterm(stub, tmp_path):
    """The reference agent as it runs in a pod: each attempt reads the file again, so a token
    the kubelet swapped in is sent next; SIGTERM ends it at once with exit 0."""
    old, new = mint_token("twst"), mint_token("twst")
    token_file = tmp_path / "token"
    token_file.write_text(old + "\n")
    rotated = {"reason": "rotated"}
    server = stub([ALLOWED, (401, {}, json.dumps(rotated).encode())],
                  on_request=lambda n: write(token_file, new + "\n") if n == 1 else None)
    probe = subprocess.Popen(
        [sys.executable, "-m", "tokenwarden", "token", "probe", "--token-file", str(token_file), "--url", server.url,
         "--permission", "write:profiles", "--interval", "100ms"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [probe.stdout.readline() for _ in range(3)]  # one line per attempt, flushed as it goes
        started = time.monotonic()
        probe.send_signal(signal.SIGTERM)
        assert probe.wait(timeout=10) == 0
        assert time.monotonic() - started < 3
    finally:
        if probe.poll() is None:
            probe.kill()
    output = "".join(lines) + probe.stdout.read() + probe.stderr.read()
    assert lines == [
        f"status=200 token={short_hash(old)} subject=tokenwarden:observability:serviceaccount:profiler "
        "roles=profile-writer\n",
        f"status=401 token={short_hash(new)} reason=rotated\n",
        f"status=401 token={short_hash(new)} reason=rotated\n",
    ]
    assert short_hash(old) != short_hash(new)
    assert old not in output and new not in output and old[5:] not in output and new[5:] not in output
    assert [a for _, a in server.requests[:3]] == [f"Bearer {old}", f"Bearer {new}", f"Bearer {new}"]
    assert all(parse_qs(urlsplit(q).query) == {"permission": ["write:profiles"]} for q, _ in server.requests)


def test_sigterm_ends_a_probe_waiting_for_its_next_attempt(tmp_path):
    probe = subprocess.Popen(
        [sys.executable, "-m", "tokenwarden", "token", "probe", "--token-file", str(tmp_path / "token"),
         "--url", "http://127.0.0.1:9/verify", "--interval", "1h"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert probe.stdout.readline() == 'error="token file missing"\n'
        probe.send_signal(signal.SIGTERM)
        assert probe.wait(timeout=5) == 0
    finally:
        if probe.poll() is None:
            probe.kill()
    assert probe.stderr.read() == ""


async def test_the_probe_reads_the_authenticators_own_answers(tmp_path):
    """Against the real /verify handler: the subject and roles of a 200, the reason of a 401 and a 403."""
    token = mint_token("twst")
    index = TokenIndex()
    index.put(Identity(kind="ServiceToken", namespace="observability", name="profiling-agent", account="profiler",
                       roles=(), phase="Active", expires_at=None), [(hash_token(token), None)])
    index.accounts[("observability", "profiler")] = Account(uid="uid-profiler")
    index.put_binding(("observability", "profiler-profiles"), "profiler", Binding(("profile-writer",)))
    authenticator = Authenticator(Settings(), index)
    runner = web.AppRunner(authenticator.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    (tmp_path / "token").write_text(token + "\n")

    async def probe(permission, text=None):
        if text is not None:
            (tmp_path / "token").write_text(text)
        url = with_query(f"http://127.0.0.1:{port}/verify", permission, None)
        return await asyncio.to_thread(attempt, tmp_path / "token", url, "Bearer", make_opener(None))

    try:
        assert await probe("write:profiles") == (
            True, f"status=200 token={short_hash(token)} subject=tokenwarden:observability:serviceaccount:profiler "
                  "roles=profile-writer")
        assert await probe("read") == (False, f"status=403 token={short_hash(token)} reason=permission")
        other = mint_token("twst")
        assert await probe("write:profiles", other) == (False, f"status=401 token={short_hash(other)} reason=unknown")
    finally:
        await runner.cleanup()
