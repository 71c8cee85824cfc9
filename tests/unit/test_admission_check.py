"""What the admission check makes of the API server's answer to its dry run."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from kubernetes.client.rest import ApiException

from tokenwarden.handlers import _admission_check


class DryRun:
    """create_namespaced_custom_object of CustomObjectsApi: accepts, or refuses as told."""

    def __init__(self, status: int | None = None, message: str = "") -> None:
        self.status, self.message, self.calls = status, message, []

    def create_namespaced_custom_object(self, group, version, namespace, plural, body, dry_run=None):
        self.calls.append((namespace, plural, body, dry_run))
        if self.status is not None:
            error = ApiException(status=self.status, reason="refused")
            error.body = json.dumps({"message": self.message})
            raise error
        return body


def _check(custom, namespaces=()):
    return _admission_check.check(SimpleNamespace(custom=custom, namespaces=list(namespaces)))


def test_refused_by_the_webhook_is_enforced():
    custom = DryRun(422, f'admission webhook "validate-token.tokenwarden.io" denied the request: '
                         f'role {_admission_check.PROBE_ROLE} is not in the role catalog (known: reader)')
    enforced, _ = _check(custom, ["team-a", "team-b"])
    assert enforced
    namespace, plural, body, dry_run = custom.calls[0]
    assert (namespace, plural, dry_run) == ("team-a", "servicetokens", "All")  # a served namespace; stored nowhere
    assert body["spec"]["roles"] == [_admission_check.PROBE_ROLE]


@pytest.mark.parametrize("custom, words", [
    (DryRun(), "was accepted"),  # no webhook, or one ignored on failure
    (DryRun(403, "servicetokens is forbidden: cannot create"), "not by admission"),  # RBAC: unknown, so not enforced
    (DryRun(503, "unavailable"), "could not be asked"),
])
def test_anything_else_is_not_enforced_and_says_why(custom, words):
    enforced, answer = _check(custom)
    assert not enforced and words in answer
    assert custom.calls[0][0] == "default"  # all namespaces served: one that exists everywhere
