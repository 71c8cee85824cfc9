"""The authenticator's ports and certificate, as the process runs: the public port serves
verification only; health and metrics have a port of their own; a certificate swapped
under the running process is presented by new handshakes, and a bad one is not."""
from __future__ import annotations

import http.client
import os
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tokenwarden import devcluster
from tokenwarden.tls import create_ca, issue_serving_cert

from ..conftest import AuthenticatorProcess
from .test_authenticator import _eventually


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz"])
def test_health_and_metrics_are_not_on_the_public_port(authenticator, path):
    assert authenticator.get(path).status_code == 404
    assert authenticator.internal(path).status_code == 200


def test_the_metrics_port_serves_no_verification(authenticator):
    assert authenticator.internal("/verify").status_code == 404
    response = requests.post(authenticator.metrics_url + "/apis/authentication.k8s.io/v1/tokenreviews",
                             json={"spec": {"token": "x"}}, timeout=5)
    assert response.status_code in (404, 405)
    assert authenticator.get("/verify").status_code == 401  # the public port answers


def _presented(port: int, ca: Path) -> str:
    """The DNS name of the certificate a new handshake gets (its chain verified against ``ca``)."""
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False  # every pair here is for 127.0.0.1; the DNS name tells them apart
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw) as tls:
            return next(v for k, v in tls.getpeercert()["subjectAltName"] if k == "DNS")


class _Volume:
    """A Secret volume as the kubelet updates it: tls.crt -> ..data/tls.crt, ..data swapped."""

    def __init__(self, root: Path) -> None:
        self.root, self.generation = root, 0
        root.mkdir()

    def write(self, cert: Path, key: Path, ca: Path) -> None:
        self.generation += 1
        version = self.root / f"..v{self.generation}"
        version.mkdir()
        for source, name in ((cert, "tls.crt"), (key, "tls.key"), (ca, "ca.crt")):
            shutil.copy(source, version / name)
        (self.root / "..data_tmp").symlink_to(version.name)
        os.replace(self.root / "..data_tmp", self.root / "..data")
        for name in ("tls.crt", "tls.key", "ca.crt"):
            if not (self.root / name).is_symlink():
                (self.root / name).symlink_to(f"..data/{name}")


def test_a_certificate_swapped_under_the_running_authenticator_is_served(cluster, tmp_path):
    ca = create_ca(tmp_path / "ca", "reload-ca")
    issued = tmp_path / "issued"
    issued.mkdir()
    first, second, third = (issue_serving_cert(ca, issued, name, [name, "127.0.0.1"])
                            for name in ("first.example", "second.example", "third.example"))
    volume = _Volume(tmp_path / "mounted")
    volume.write(first.cert, first.key, ca.cert)
    process = AuthenticatorProcess(cluster, tmp_path, port=devcluster.free_port(), tls=volume.root,
                                   extra=("--tls-check-interval", "0.2"))
    try:
        assert _presented(process.port, ca.cert) == "first.example"

        volume.write(second.cert, second.key, ca.cert)
        assert _eventually(lambda: _presented(process.port, ca.cert) == "second.example"), process.log()[-2000:]

        # A key that does not belong to the certificate: reported, and the current pair served on.
        volume.write(third.cert, first.key, ca.cert)
        assert _eventually(lambda: "kept the current TLS certificate" in process.log(), 30), process.log()[-2000:]
        assert _presented(process.port, ca.cert) == "second.example"
        assert process.get("/verify").status_code == 401  # and it still answers
        assert process.process.poll() is None
    finally:
        process.stop()


def test_a_certificate_that_cannot_be_served_stops_the_start_naming_the_files(cluster, tmp_path):
    ca = create_ca(tmp_path / "ca", "bad-ca")
    first = issue_serving_cert(ca, tmp_path, "first", ["127.0.0.1"])
    second = issue_serving_cert(ca, tmp_path, "second", ["127.0.0.1"])
    result = subprocess.run([sys.executable, "-m", "tokenwarden", "authenticator", "--kubeconfig",
                             str(cluster.kubeconfig), "--host", "127.0.0.1", "--port", str(devcluster.free_port()),
                             "--metrics-port", str(devcluster.free_port()), "--tls-cert", str(first.cert),
                             "--tls-key", str(second.key)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"cannot serve TLS with certificate {first.cert} and key {second.key}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_stopping_authenticator_answers_on_kept_alive_connections_then_closes_them(cluster, tmp_path):
    """SIGTERM (the pod stopping): for --drain the public port goes on answering, and
    every answer says ``Connection: close``, so a client (the API server asking for a
    TokenReview) never meets a connection closed under a request it sent."""
    process = AuthenticatorProcess(cluster, tmp_path, port=devcluster.free_port(), extra=("--drain", "10m"))
    context = ssl.create_default_context(cafile=process.ca)
    kept = http.client.HTTPSConnection("127.0.0.1", process.port, context=context)
    try:
        kept.request("GET", "/verify")
        answer = kept.getresponse()
        answer.read()
        assert (answer.status, answer.getheader("Connection")) == (401, None)

        process.process.terminate()
        assert _eventually(lambda: "the authenticator: draining" in process.log(), 30), process.log()[-2000:]
        kept.request("GET", "/verify")
        answer = kept.getresponse()
        answer.read()
        assert (answer.status, answer.getheader("Connection")) == (401, "close")
        assert process.process.poll() is None, "it stops only when the drain is over"
    finally:
        kept.close()
        process.process.kill()
        process.process.wait()
