"""An imported key's source changes between the moment its first import reads it and the
moment that import writes its status: the newer value must win, whatever the order.

The randomised fault test found this once (seed 1181713340: ``import-stale``); replaying a
seed does not replay the operator's timing, so this test stages the interleaving itself.
The operator's own handlers run in this process against the real API server (the operator
process is stopped meanwhile, so nothing else writes), and a concurrent writer is brought
in at the exact step: right after the first import has read the source's old value.
"""
from __future__ import annotations

import kopf
from kubernetes import client

from tokenwarden.handlers._import_sources import _recheck_importers
from tokenwarden.handlers._mint import reconcile_token
from tokenwarden.handlers._token_kinds import SERVICE_TOKEN

from .inprocess import LOG, no_events, operator_memo, operator_stopped  # noqa: F401  (fixtures)
from .kubehelpers import GROUP, VERSION, create, get
from .test_import import _kept, _source

OLD, NEW = "imported-key-before-9f3a6c2e51d0b7", "imported-key-after-4b8e1d7c62a9f0"


class SourceChangesOnFirstRead:
    """The operator's CoreV1Api, except that its first read of ``source`` is followed, before
    the reader gets the old value, by a change of the source and by what the operator does on
    that change (the import-source handler's recheck)."""

    def __init__(self, core: client.CoreV1Api, source: str, change) -> None:
        self._core, self._source, self._change = core, source, change
        self.changed = False

    def __getattr__(self, name):
        return getattr(self._core, name)

    def read_namespaced_secret(self, name, namespace, **kwargs):
        secret = self._core.read_namespaced_secret(name, namespace, **kwargs)
        if name == self._source and not self.changed:
            self.changed = True
            self._change()
        return secret


def _as_kopf_runs_it(memo, body: dict) -> None:
    """The create handler as kopf runs it: its status patch applied as kopf applies it (a
    merge patch, on no resourceVersion), and retried while it raises TemporaryError."""
    for _ in range(5):
        patch = kopf.Patch()
        try:
            reconcile_token(SERVICE_TOKEN, kopf.Body(body), patch, memo, LOG)
        except kopf.TemporaryError:
            body = memo.custom.get_namespaced_custom_object(GROUP, VERSION, body["metadata"]["namespace"],
                                                            "servicetokens", body["metadata"]["name"])
            continue
        if patch.get("status"):
            memo.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, body["metadata"]["namespace"], "servicetokens", body["metadata"]["name"],
                {"status": dict(patch["status"])})
        return
    raise AssertionError("the create handler kept asking to be retried")


def test_a_source_changed_while_its_first_import_runs_ends_with_the_new_value(
        api_client, custom, core, namespace, operator_stopped, no_events):
    _source(core, namespace, "rotating-key", OLD)
    create(custom, "ServiceToken", namespace, "importer",
           {"roles": ["reader"], "import": {"secretRef": {"name": "rotating-key"}}})
    body = get(custom, "ServiceToken", namespace, "importer")
    memo = operator_memo(api_client)

    def change():
        # The owner rotates the key, and the operator's handler for the source's event runs.
        core.patch_namespaced_secret("rotating-key", namespace, {"stringData": {"token": NEW}})
        _recheck_importers("MODIFIED", namespace, "rotating-key", ["importer"], memo, LOG)

    memo.core = SourceChangesOnFirstRead(memo.core, "rotating-key", change)
    _as_kopf_runs_it(memo, body)

    assert memo.core.changed, "the first import never read its source"
    status = get(custom, "ServiceToken", namespace, "importer")["status"]
    assert status["phase"] == "Active"
    assert status["tokenHash"] == _kept(core, NEW) != _kept(core, OLD), \
        "the first import's older value overwrote the newer one the source's change brought"
