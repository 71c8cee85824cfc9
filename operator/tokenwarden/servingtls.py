"""A server's certificate (the authenticator's, the admission webhook's), reloaded when its files change.

A mounted Secret changes by a symlink swap (the kubelet) and cert-manager renews in
place, so the files are compared by what ``stat`` says of them, following symlinks.
A new pair is loaded into a fresh context first: one that does not load (a key that
does not match, a half-written file) is logged and the current pair kept. Every new
handshake is given the current context, so it presents the newest certificate;
connections already open keep theirs.
"""
from __future__ import annotations

import asyncio
import logging
import os
import ssl

logger = logging.getLogger("tokenwarden.tls")


class CertificateError(Exception):
    """The certificate and key given at start cannot be served."""


def _signature(*paths: str) -> tuple:
    stats = [os.stat(p) for p in paths]
    return tuple((s.st_dev, s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)


def _load(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


class ReloadingCertificate:
    """An SSLContext for the server whose certificate follows the files ``cert`` and ``key``."""

    def __init__(self, cert: str, key: str) -> None:
        self.cert, self.key = cert, key
        try:
            self._seen = _signature(cert, key)
            self.context = _load(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise CertificateError(f"cannot serve TLS with certificate {cert} and key {key}: {exc}. "
                                   "Give a PEM certificate chain and its private key.") from exc
        self.context.sni_callback = self._select  # the server's context; it hands each handshake the current one
        self.current = self.context

    def _select(self, connection, server_name, context) -> None:
        # Called for every handshake, with or without SNI.
        connection.context = self.current

    def check(self) -> bool:
        """Load the files again if they changed since the last look; True when a new pair is in use."""
        try:
            seen = _signature(self.cert, self.key)
        except OSError as exc:  # between the steps of an update: look again next time
            logger.debug("TLS files not readable now (%s); serving the current certificate", exc)
            return False
        if seen == self._seen:
            return False
        self._seen = seen  # a bad pair is reported once, and tried again when the files change again
        try:
            context = _load(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            logger.warning("kept the current TLS certificate: the new %s and %s cannot be used: %s",
                           self.cert, self.key, exc)
            return False
        self.current = context
        logger.info("TLS certificate reloaded from %s", self.cert)
        return True


async def watch_certificate(certificate: ReloadingCertificate, stop: asyncio.Event, interval: float) -> None:
    """Every ``interval`` seconds until ``stop``, pick up a changed certificate."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except asyncio.TimeoutError:
            certificate.check()
