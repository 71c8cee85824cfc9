"""Certificates and keys for the local control plane."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tokenwarden.tls import KeyPair, create_ca, issue_client_cert, issue_serving_cert, write_private_key

APISERVER_HOSTS = ["localhost", "127.0.0.1", "kubernetes", "kubernetes.default",
                   "kubernetes.default.svc", "10.0.0.1"]


@dataclass(frozen=True)
class Pki:
    ca: KeyPair
    serving: KeyPair
    admin: KeyPair
    service_account_key: Path
    service_account_pub: Path


def create_pki(directory: Path, extra_hosts: tuple[str, ...] = ()) -> Pki:
    """A CA, an API-server serving cert (for :data:`APISERVER_HOSTS` and ``extra_hosts``),
    an admin client cert and a service-account key."""
    ca = create_ca(directory, "tokenwarden-dev-cluster-ca")
    serving = issue_serving_cert(ca, directory, "apiserver", [*APISERVER_HOSTS, *extra_hosts])
    admin = issue_client_cert(ca, directory, "admin", "admin", "system:masters")
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_private, sa_public = directory / "sa.key", directory / "sa.pub"
    write_private_key(sa_private, sa_key)
    sa_public.write_bytes(sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return Pki(ca=ca, serving=serving, admin=admin,
               service_account_key=sa_private, service_account_pub=sa_public)
