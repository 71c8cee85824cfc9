"""The operator's handlers run in the test's own process, against the real API server, to
stage an interleaving exactly: the operator process is stopped meanwhile, so that nothing
else writes, and started again afterwards."""
from __future__ import annotations

import logging

import kopf
import pytest
import yaml
from kubernetes import client

from tokenwarden.config import Settings
from tokenwarden.handlers._import_key import ImportKeys
from tokenwarden.handlers._indexes import RESOURCES, Indexes
from tokenwarden.handlers._work import TokenLocks
from tokenwarden.kube import objects

from ..conftest import TEST_SETTINGS
from ..support_events import events_off

LOG = logging.getLogger("tokenwarden.test")


@pytest.fixture
def operator_stopped(operator):
    """The operator process down while the handlers run here; started again afterwards."""
    operator.stop()
    yield
    operator.start()


@pytest.fixture
def no_events():
    """kopf's events need a running operator's context: off for handlers run in this process."""
    with events_off():
        yield


class SubmittedWork:
    """Stands in for the work queue where the test runs the work itself, in the order staged:
    it records what was submitted, under which key."""

    def __init__(self) -> None:
        self.submitted: list[tuple] = []

    def submit(self, key, fn, *args, **_) -> None:
        self.submitted.append((key, fn, args))


def operator_memo(api_client: client.ApiClient) -> kopf.Memo:
    """What the operator's handlers share, as the operator builds it at start."""
    memo = kopf.Memo()
    memo.settings = Settings.model_validate(yaml.safe_load(TEST_SETTINGS))
    memo.core = client.CoreV1Api(api_client)
    memo.custom = client.CustomObjectsApi(api_client)
    memo.namespaces = []
    memo.indexes = Indexes(memo.settings.roles)
    for resource in RESOURCES:  # as kopf's listings fill them at start
        for body in objects.iter_objects(memo.custom, resource, None):
            memo.indexes.observe(resource.kind, body)
    memo.import_keys = ImportKeys()
    memo.token_locks = TokenLocks()
    memo.work = SubmittedWork()
    return memo
