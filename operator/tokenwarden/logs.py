"""How the operator and the authenticator write their log: text for people, or JSON lines for
log pipelines (Loki, Elasticsearch, Cloud Logging) that should not have to parse text.

A JSON line holds ``time`` (RFC 3339, UTC), ``level``, ``logger`` and ``message``, ``object``
(``kind``, ``namespace``, ``name``) when the record is about one (kopf's object loggers put
``k8s_ref`` on every record of a handler), ``exc_info`` with the traceback of an exception,
and the ``extra`` fields a caller gave. Nothing else of the record: kopf's loggers also carry
the operator's whole settings, which are no one's business in a log line.

kopf has a JSON format of its own (``kopf run --log-format json``), but without the logger's
name, and it is configured only through kopf; python-json-logger (kopf's own dependency for it)
does the encoding here, so that the authenticator, which is no kopf process, writes the same lines.
"""
from __future__ import annotations

import logging

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

LOG_FORMATS = ("text", "json")  # the first is the default

#: The text format of both processes: kopf's own ("full").
TEXT_FORMAT = "[%(asctime)s] %(name)-20.20s [%(levelname)-8.8s] %(message)s"

# kopf's object loggers put these on every record: k8s_ref becomes "object", the rest stays out.
_KOPF_ATTRS = ("k8s_ref", "k8s_skip", "settings")
_OBJECT_FIELDS = ("kind", "namespace", "name")


class JsonLines(JsonFormatter):
    """One JSON object per record: time, level, logger, message, object."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s %(message)s", timestamp="time",
                         rename_fields={"levelname": "level", "name": "logger"},
                         reserved_attrs=[*RESERVED_ATTRS, *_KOPF_ATTRS])

    def add_fields(self, log_record: dict, record: logging.LogRecord, message_dict: dict) -> None:
        super().add_fields(log_record, record, message_dict)
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict):
            log_record["object"] = {field: ref[field] for field in _OBJECT_FIELDS if ref.get(field)}


def format_logs_as(log_format: str) -> None:
    """Write every line of the root logger's handlers in ``log_format`` (``text`` leaves them as
    they are), Python's warnings among them. Called once the process has configured its handlers
    and levels."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}: one of {', '.join(LOG_FORMATS)}")
    if log_format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonLines())
        logging.captureWarnings(True)  # a library's warning would otherwise be a line of bare text
