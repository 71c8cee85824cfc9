"""`tokenwarden dev-cluster --node` as a user runs it: the kubeconfig is printed once the
node is Ready, kubectl works from the host, and SIGTERM leaves nothing behind."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tokenwarden import devcluster


def _namespaces() -> set[str]:
    return set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())


def _cgroups() -> set[str]:
    return {p.name for p in Path("/sys/fs/cgroup/pids").glob("tokenwarden-*")}


def test_dev_cluster_node_command(request, tmp_path):
    if request.config.getoption("--cluster") == "kind":
        pytest.skip("the local node only")
    problems = devcluster.node_problems()
    if problems:
        pytest.skip("node tier skipped: " + "; ".join(problems))
    kubectl = str(devcluster.ensure_node_binaries(lambda *_: None).kubectl)
    before = (_namespaces(), _cgroups())
    kubeconfig = tmp_path / "tw.kubeconfig"
    process = subprocess.Popen([sys.executable, "-m", "tokenwarden", "dev-cluster", "--node",
                                "--kubeconfig", str(kubeconfig)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line == f"kubeconfig: {kubeconfig}\n", process.stderr.read() if process.poll() is not None else line
        nodes = subprocess.run([kubectl, f"--kubeconfig={kubeconfig}", "get", "nodes", "--no-headers"],
                               capture_output=True, text=True, check=True).stdout
        assert f"{devcluster.NODE_NAME} " in nodes and " Ready " in nodes
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(120) == 0
    assert "dev-cluster stopped" in process.stderr.read()
    assert not kubeconfig.exists()
    # Nothing of this node is left; another node of the run (the tier's own) may come or go meanwhile.
    left = (_namespaces() - before[0], _cgroups() - before[1])
    assert left == (set(), set()), f"the node left a network namespace or cgroups behind: {left}"
