"""The authenticator's event loop: --event-loop picks asyncio's own (the default) or uvloop's,
and the authenticator runs on the loop it was given."""
from __future__ import annotations

import asyncio
import builtins

import pytest
import uvloop
from click.testing import CliRunner

from tokenwarden.authn import AuthenticatorOptions, _run
from tokenwarden.cli import cli


def _loop_served_on(monkeypatch, **options) -> type:
    """The class of the running loop that ``serve`` was called on by run_authenticator."""
    seen = []

    async def serve(opts, stop):
        seen.append(type(asyncio.get_running_loop()))

    monkeypatch.setattr(_run, "serve", serve)
    _run.run_authenticator(AuthenticatorOptions(**options))
    assert len(seen) == 1
    return seen[0]


def test_the_authenticator_runs_on_asyncios_loop_by_default(monkeypatch):
    loop_class = _loop_served_on(monkeypatch)
    assert not issubclass(loop_class, uvloop.Loop)
    assert issubclass(loop_class, asyncio.BaseEventLoop)


def test_the_authenticator_runs_on_uvloop_when_asked(monkeypatch):
    assert issubclass(_loop_served_on(monkeypatch, event_loop="uvloop"), uvloop.Loop)


def test_an_unknown_loop_is_refused():
    with pytest.raises(ValueError, match="unknown event loop"):
        _run.loop_factory("trio")


def test_without_uvloop_the_error_names_the_way_out(monkeypatch):
    real_import = builtins.__import__

    def no_uvloop(name, *args, **kwargs):
        if name == "uvloop":
            raise ImportError("No module named 'uvloop'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    with pytest.raises(_run.EventLoopUnavailable, match="--event-loop asyncio"):
        _run.loop_factory("uvloop")
    assert _run.loop_factory("asyncio") is None


@pytest.mark.parametrize("args, expected", [([], "asyncio"), (["--event-loop", "asyncio"], "asyncio"),
                                            (["--event-loop", "uvloop"], "uvloop")])
def test_the_command_line_passes_the_loop_on(monkeypatch, args, expected):
    import tokenwarden.authn
    import tokenwarden.cli._authenticator as command

    received = []
    monkeypatch.setattr(tokenwarden.authn, "run_authenticator", received.append)
    monkeypatch.setattr(command, "prepare", lambda kubeconfig, config: AuthenticatorOptions().settings)
    result = CliRunner().invoke(cli, ["authenticator", *args])
    assert result.exit_code == 0, result.output
    assert [options.event_loop for options in received] == [expected]


def test_the_command_line_offers_the_loops_the_authenticator_knows():
    result = CliRunner().invoke(cli, ["authenticator", "--event-loop", "trio"])
    assert result.exit_code == 2
    assert all(name in result.output for name in _run.EVENT_LOOPS)
    assert _run.AuthenticatorOptions().event_loop == _run.EVENT_LOOPS[0] == "asyncio"
