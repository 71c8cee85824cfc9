"""The authenticator's certificate follows its files: a new handshake presents the new
certificate after a Secret volume's symlink swap or an in-place renewal; a pair that
does not load is reported and the current one kept."""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tokenwarden.servingtls import CertificateError, ReloadingCertificate, watch_certificate
from tokenwarden.tls import create_ca, issue_serving_cert


@pytest.fixture
def ca(tmp_path):
    return create_ca(tmp_path / "ca", "test-ca")


def issue(ca, tmp_path: Path, stem: str):
    """A new serving pair for 127.0.0.1, under its own name so the test can tell them apart."""
    directory = tmp_path / "issued"
    directory.mkdir(exist_ok=True)
    return issue_serving_cert(ca, directory, stem, ["127.0.0.1", f"{stem}.example"])


def der(pair) -> bytes:
    return x509.load_pem_x509_certificate(pair.cert.read_bytes()).public_bytes(Encoding.DER)


class SecretVolume:
    """A directory laid out as the kubelet lays out a mounted Secret: tls.crt -> ..data/tls.crt,
    ..data -> a timestamped directory; an update writes a new directory and swaps ..data."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.generation = 0

    def write(self, cert: Path, key: Path) -> None:
        self.generation += 1
        version = self.root / f"..2026_01_01_00_00_{self.generation:02d}"
        version.mkdir()
        shutil.copy(cert, version / "tls.crt")
        shutil.copy(key, version / "tls.key")
        link = self.root / "..data_tmp"
        link.symlink_to(version.name)
        os.replace(link, self.root / "..data")
        for name in ("tls.crt", "tls.key"):
            if not (self.root / name).is_symlink():
                (self.root / name).symlink_to(f"..data/{name}")

    @property
    def cert(self) -> str:
        return str(self.root / "tls.crt")

    @property
    def key(self) -> str:
        return str(self.root / "tls.key")


async def presented(context: ssl.SSLContext, ca) -> bytes:
    """The certificate a new handshake with a server on ``context`` presents (DER)."""
    async def answer(reader, writer):
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    try:
        port = server.sockets[0].getsockname()[1]
        client = ssl.create_default_context(cafile=str(ca.cert))
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        certificate = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        return certificate
    finally:
        server.close()
        await server.wait_closed()


def test_a_new_handshake_presents_the_certificate_of_a_swapped_secret_volume(ca, tmp_path):
    first, second = issue(ca, tmp_path, "first"), issue(ca, tmp_path, "second")
    volume = SecretVolume(tmp_path / "mounted")
    volume.write(first.cert, first.key)
    certificate = ReloadingCertificate(volume.cert, volume.key)
    assert asyncio.run(presented(certificate.context, ca)) == der(first)

    assert certificate.check() is False  # nothing changed
    volume.write(second.cert, second.key)
    assert certificate.check() is True
    assert asyncio.run(presented(certificate.context, ca)) == der(second)


def test_a_certificate_renewed_in_place_is_picked_up(ca, tmp_path):
    first, second = issue(ca, tmp_path, "first"), issue(ca, tmp_path, "second")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copy(first.cert, cert)
    shutil.copy(first.key, key)
    certificate = ReloadingCertificate(str(cert), str(key))

    for source, target in ((second.cert, cert), (second.key, key)):
        temporary = target.with_suffix(".new")
        shutil.copy(source, temporary)
        os.replace(temporary, target)
    assert certificate.check() is True
    assert asyncio.run(presented(certificate.context, ca)) == der(second)


def test_a_bad_new_pair_is_reported_and_the_current_certificate_kept(ca, tmp_path, caplog):
    first, second, third = (issue(ca, tmp_path, s) for s in ("first", "second", "third"))
    volume = SecretVolume(tmp_path / "mounted")
    volume.write(first.cert, first.key)
    certificate = ReloadingCertificate(volume.cert, volume.key)

    volume.write(second.cert, third.key)  # a key that does not match the certificate
    with caplog.at_level(logging.WARNING, logger="tokenwarden.tls"):
        assert certificate.check() is False
    assert f"kept the current TLS certificate: the new {volume.cert} and {volume.key} cannot be used" in caplog.text
    assert asyncio.run(presented(certificate.context, ca)) == der(first)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tokenwarden.tls"):
        assert certificate.check() is False
    assert not caplog.text, "the same bad pair is reported once"

    volume.write(third.cert, third.key)  # fixed
    assert certificate.check() is True
    assert asyncio.run(presented(certificate.context, ca)) == der(third)


def test_files_missing_for_a_moment_keep_the_current_certificate(ca, tmp_path):
    first = issue(ca, tmp_path, "first")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copy(first.cert, cert)
    shutil.copy(first.key, key)
    certificate = ReloadingCertificate(str(cert), str(key))
    cert.unlink()
    assert certificate.check() is False
    assert asyncio.run(presented(certificate.context, ca)) == der(first)


def test_a_pair_that_cannot_be_served_at_start_is_named(ca, tmp_path):
    first, second = issue(ca, tmp_path, "first"), issue(ca, tmp_path, "second")
    with pytest.raises(CertificateError, match=f"certificate {first.cert} and key {second.key}"):
        ReloadingCertificate(str(first.cert), str(second.key))
    with pytest.raises(CertificateError, match="PEM certificate chain"):
        ReloadingCertificate(str(tmp_path / "absent.crt"), str(first.key))


def test_the_watch_checks_until_stopped(ca, tmp_path):
    """The periodic watch picks up a swap by itself and ends when told to stop."""
    first, second = issue(ca, tmp_path, "first"), issue(ca, tmp_path, "second")
    volume = SecretVolume(tmp_path / "mounted")
    volume.write(first.cert, first.key)
    certificate = ReloadingCertificate(volume.cert, volume.key)
    checked = asyncio.Event()
    check = certificate.check

    def counting_check() -> bool:
        changed = check()
        if changed:
            checked.set()
        return changed

    certificate.check = counting_check

    async def scenario() -> bytes:
        stop = asyncio.Event()
        watch = asyncio.create_task(watch_certificate(certificate, stop, interval=0.01))
        volume.write(second.cert, second.key)
        await checked.wait()
        stop.set()
        await watch
        return await presented(certificate.context, ca)

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) == der(second)
