"""--log-format json: one JSON object per line, with time, level, logger, message and the object a
kopf handler's record is about, and nothing of kopf's settings."""
from __future__ import annotations

import io
import json
import logging
import sys
import warnings
from datetime import datetime

import pytest
from click.testing import CliRunner

from tokenwarden.cli import cli
from tokenwarden.logs import JsonLines, format_logs_as


def _line(record: logging.LogRecord) -> dict:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines())
    handler.handle(record)
    text = stream.getvalue()
    assert text.count("\n") == 1, text
    return json.loads(text)


def _record(msg: str, level: int = logging.INFO, name: str = "kopf.objects", **extra) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 1, msg, (), None)
    record.__dict__.update(extra)
    return record


def test_a_line_names_time_level_logger_message_and_the_object():
    line = _line(_record("Minted.", k8s_skip=False, settings=object(), k8s_ref={
        "apiVersion": "tokenwarden.io/v1alpha1", "kind": "ServiceToken", "name": "agent",
        "uid": "0a1b", "namespace": "team-a"}))
    assert datetime.fromisoformat(line.pop("time")).utcoffset().total_seconds() == 0  # RFC 3339, UTC
    assert line == {"level": "INFO", "logger": "kopf.objects", "message": "Minted.",
                    "object": {"kind": "ServiceToken", "namespace": "team-a", "name": "agent"}}


def test_a_record_about_no_object_has_none_and_keeps_its_extra_fields():
    line = _line(_record("index loaded: %d token hashes", name="tokenwarden.authenticator", level=logging.DEBUG,
                         args=None, count=3))
    assert "object" not in line
    assert (line["level"], line["logger"], line["count"]) == ("DEBUG", "tokenwarden.authenticator", 3)


def test_a_cluster_scoped_object_has_no_namespace():
    line = _line(_record("Peering.", k8s_ref={"kind": "ClusterKopfPeering", "name": "tw", "namespace": None}))
    assert line["object"] == {"kind": "ClusterKopfPeering", "name": "tw"}


def test_an_exception_stays_on_one_line():
    try:
        raise RuntimeError("the API server is away")
    except RuntimeError:
        record = _record("watch failed", level=logging.ERROR, exc_info=sys.exc_info())
    line = _line(record)
    assert line["message"] == "watch failed"
    assert "RuntimeError: the API server is away" in line["exc_info"]


def test_json_replaces_the_root_handlers_formatter_and_text_leaves_it():
    root, level = logging.getLogger(), logging.getLogger().level
    handler = logging.StreamHandler(io.StringIO())
    original = logging.Formatter("%(message)s")
    handler.setFormatter(original)
    root.addHandler(handler)
    try:
        format_logs_as("text")
        assert handler.formatter is original
        format_logs_as("json")
        assert isinstance(handler.formatter, JsonLines)
        root.setLevel(logging.WARNING)
        warnings.warn("a library's deprecation", DeprecationWarning, stacklevel=1)
        line = json.loads(handler.stream.getvalue().splitlines()[-1])  # a warning is a JSON line too
        assert line["logger"] == "py.warnings" and "a library's deprecation" in line["message"]
        with pytest.raises(ValueError, match="unknown log format 'yaml': one of text, json"):
            format_logs_as("yaml")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)


@pytest.mark.parametrize("command", ["operator", "authenticator"])
def test_an_unknown_log_format_is_a_usage_error_before_anything_starts(command):
    result = CliRunner().invoke(cli, [command, "-A", "--log-format", "yaml"] if command == "operator"
                                else [command, "--log-format", "yaml"])
    assert result.exit_code == 2
    assert "'yaml' is not one of 'text', 'json'" in result.output
