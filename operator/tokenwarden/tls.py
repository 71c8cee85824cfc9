"""X.509 helpers (cryptography) for the webhook servers, the operator's own certificates and
the local control plane."""
from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tokenwarden.policies._certificates import CertFacts

DEFAULT_VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def write_private_key(path: Path, key) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _sign(subject: x509.Name, key, issuer: x509.Name, issuer_key, *, ca: bool,
          usages: list, sans: list | None = None,
          validity: datetime.timedelta = DEFAULT_VALIDITY,
          now: datetime.datetime | None = None) -> x509.Certificate:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(pair: KeyPair, cert: x509.Certificate, key) -> KeyPair:
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_private_key(pair.key, key)
    return pair


def create_ca(directory: Path, common_name: str) -> KeyPair:
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = name(common_name)
    cert = _sign(subject, key, subject, key, ca=True, usages=[])
    return _write(KeyPair(directory / "ca.crt", directory / "ca.key"), cert, key)


def _load(ca: KeyPair):
    return (x509.load_pem_x509_certificate(ca.cert.read_bytes()),
            serialization.load_pem_private_key(ca.key.read_bytes(), None))


def _sans(hosts: list[str]) -> list:
    sans: list = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    return sans


def _serving(ca_cert: x509.Certificate, ca_key, hosts: list[str], validity: datetime.timedelta,
             now: datetime.datetime | None = None):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _sign(name(hosts[0]), key, ca_cert.subject, ca_key, ca=False,
                 usages=[ExtendedKeyUsageOID.SERVER_AUTH], sans=_sans(hosts), validity=validity, now=now)
    return cert, key


def issue_serving_cert(ca: KeyPair, directory: Path, stem: str, hosts: list[str]) -> KeyPair:
    """A TLS serving certificate for ``hosts`` (DNS names or IPs), signed by ``ca``."""
    ca_cert, ca_key = _load(ca)
    cert, key = _serving(ca_cert, ca_key, hosts, DEFAULT_VALIDITY)
    return _write(KeyPair(directory / f"{stem}.crt", directory / f"{stem}.key"), cert, key)


def issue_client_cert(ca: KeyPair, directory: Path, stem: str, common_name: str,
                      organization: str | None = None) -> KeyPair:
    ca_cert, ca_key = _load(ca)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _sign(name(common_name, organization), key, ca_cert.subject, ca_key, ca=False,
                 usages=[ExtendedKeyUsageOID.CLIENT_AUTH])
    return _write(KeyPair(directory / f"{stem}.crt", directory / f"{stem}.key"), cert, key)


# In memory, as PEM: the operator keeps these in Secrets, never in files.

@dataclass(frozen=True)
class PemPair:
    cert: bytes
    key: bytes

    def __repr__(self) -> str:  # never print a key
        return "PemPair(...)"


def _pem(cert: x509.Certificate, key) -> PemPair:
    return PemPair(cert.public_bytes(serialization.Encoding.PEM),
                   key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))


def new_ca(common_name: str, validity: datetime.timedelta, now: datetime.datetime | None = None) -> PemPair:
    """A self-signed CA (ECDSA P-256) valid for ``validity``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = name(common_name)
    return _pem(_sign(subject, key, subject, key, ca=True, usages=[], validity=validity, now=now), key)


def new_serving_cert(ca: PemPair, hosts: list[str], validity: datetime.timedelta,
                     now: datetime.datetime | None = None) -> PemPair:
    """A serving certificate for ``hosts`` (DNS names or IPs; the first is the common name), signed by ``ca``."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, None)
    return _pem(*_serving(ca_cert, ca_key, hosts, validity, now))


def facts_of(pem: bytes) -> CertFacts:
    """The facts of the first certificate in ``pem``; ValueError when there is none."""
    cert = x509.load_pem_x509_certificate(pem)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = {*sans.get_values_for_type(x509.DNSName), *map(str, sans.get_values_for_type(x509.IPAddress))}
    except x509.ExtensionNotFound:
        names = set()
    return CertFacts(cert.not_valid_before_utc, cert.not_valid_after_utc, frozenset(names), cert.serial_number)


def signed_by(pem: bytes, ca_pem: bytes) -> bool:
    """Whether the certificate in ``pem`` was issued and signed by the CA in ``ca_pem``."""
    try:
        x509.load_pem_x509_certificate(pem).verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def matching_key(cert_pem: bytes, key_pem: bytes) -> bool:
    """Whether ``key_pem`` is the private key of the certificate in ``cert_pem``."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, None)
    except (ValueError, TypeError):
        return False
    return cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo) == \
        key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
