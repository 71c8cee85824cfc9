"""kopf's events need a running operator's context: off for handlers run in the test's process."""
from __future__ import annotations

import logging
from contextlib import contextmanager

import kopf
from kopf._core.engines import posting


@contextmanager
def events_off():
    settings = kopf.OperatorSettings()
    settings.posting.level = logging.CRITICAL + 1
    reset = posting.settings_var.set(settings)
    try:
        yield
    finally:
        posting.settings_var.reset(reset)
