"""The operator checks that admission is enforced (a dry-run create that only the webhook
refuses), says so at WARNING when it is not, with the consequence and the fix, and exposes
tokenwarden_admission_enforced for the chart's alert."""
from __future__ import annotations

import re
import time

from ..conftest import OperatorProcess

CONSEQUENCE = "any user who may create a ServiceToken may grant any role"


def _enforced(process: OperatorProcess) -> float | None:
    found = re.search(r"^tokenwarden_admission_enforced (\S+)$", process.metrics(), re.MULTILINE)
    return float(found.group(1)) if found else None


def _until(check, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.5)


def test_an_operator_serving_its_webhook_finds_admission_enforced(operator):
    _until(lambda: _enforced(operator) == 1, "tokenwarden_admission_enforced 1")


def test_an_operator_without_its_webhook_says_loudly_that_admission_is_not_enforced(cluster, operator, tmp_path):
    """Run without --webhook-port (the webhook configuration a local run registered is still
    there, failure policy Ignore, with nothing behind it): a ServiceToken granting any role
    would be accepted."""
    operator.stop()
    bare = OperatorProcess(cluster.kubeconfig, tmp_path, webhook=False)
    try:
        bare.start()
        _until(lambda: "serves no admission webhook" in bare.log(), "the warning at start")
        _until(lambda: "admission is NOT enforced" in bare.log(), "the warning after the check")
        warning = next(line for line in bare.log().splitlines() if "admission is NOT enforced" in line)
        assert "WARNING" in warning and CONSEQUENCE in warning and "--webhook-port" in warning
        assert "was accepted" in warning
        assert _enforced(bare) == 0
    finally:
        bare.stop()
        operator.start()
