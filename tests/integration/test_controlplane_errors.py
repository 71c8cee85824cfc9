"""The local control plane's bad input: one clear message, nothing left running."""
from __future__ import annotations

import socket
import stat

import pytest

from tokenwarden import devcluster
from tokenwarden.devcluster import _build, _cluster


def test_no_go_toolchain_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(_build.CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(devcluster.ControlPlaneError, match="no Go toolchain on PATH: install Go"):
        devcluster.ensure_binaries()


def test_stale_kubeconfig_path_is_named(tmp_path):
    binaries = devcluster.ensure_binaries()
    plane = devcluster.ControlPlane(binaries, kubeconfig=tmp_path / "missing" / "kubeconfig")
    with pytest.raises(devcluster.ControlPlaneError, match="does not exist .create it or pass another --kubeconfig"):
        plane.start()
    foreign = tmp_path / "someone-elses"
    foreign.write_text("apiVersion: v1\nkind: Config\nclusters: [{name: production}]\n")
    with pytest.raises(devcluster.ControlPlaneError, match="is not a tokenwarden dev-cluster kubeconfig"):
        devcluster.ControlPlane(binaries, kubeconfig=foreign).start()
    assert "production" in foreign.read_text()


def test_port_already_taken_stops_everything(monkeypatch):
    binaries = devcluster.ensure_binaries()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(_cluster, "free_port", lambda: port)
        plane = devcluster.ControlPlane(binaries, controller_manager=False)
        with pytest.raises(devcluster.ControlPlaneError, match="port is already taken"):
            plane.start()
    assert plane.pids == []
    assert not plane.workdir.exists()


def test_etcd_dying_during_start_is_reported(tmp_path):
    real = devcluster.ensure_binaries()
    fake = tmp_path / "etcd"
    fake.write_text("#!/bin/sh\necho 'etcdmain: database is corrupt' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    binaries = _build.Binaries(etcd=fake, kube_apiserver=real.kube_apiserver,
                               kube_controller_manager=real.kube_controller_manager,
                               kubernetes_version=real.kubernetes_version)
    plane = devcluster.ControlPlane(binaries)
    with pytest.raises(devcluster.ControlPlaneError, match="etcd exited with code 3") as failed:
        plane.start()
    assert "database is corrupt" in str(failed.value)
    assert plane.pids == [] and not plane.workdir.exists()
