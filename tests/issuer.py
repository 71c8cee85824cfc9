"""A service-account issuer for tests without a cluster: keys that sign JWTs as kube-apiserver
does (RS256 or ES256, a kid in the header), and the JSON Web Keys it would publish."""
from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _number(value: int, size: int | None = None) -> str:
    return b64url(value.to_bytes(size or (value.bit_length() + 7) // 8, "big"))


class Issuer:
    """Signing keys by kid; ``fetch`` answers as kube-apiserver's issuer discovery would."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey] = {}
        self.reads = 0
        self.down = False

    def add_rsa(self, kid: str) -> str:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return kid

    def add_ec(self, kid: str) -> str:
        self.keys[kid] = ec.generate_private_key(ec.SECP256R1())
        return kid

    def jwks(self) -> list[dict]:
        published = []
        for kid, key in self.keys.items():
            numbers = key.public_key().public_numbers()
            if isinstance(key, rsa.RSAPrivateKey):
                published.append({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                                  "n": _number(numbers.n), "e": _number(numbers.e)})
            else:
                published.append({"kty": "EC", "use": "sig", "alg": "ES256", "kid": kid, "crv": "P-256",
                                  "x": _number(numbers.x, 32), "y": _number(numbers.y, 32)})
        return published

    def fetch(self) -> tuple[str, list[dict]]:
        from tokenwarden.kube._issuer import IssuerUnavailable

        self.reads += 1
        if self.down:
            raise IssuerUnavailable("GET /openid/v1/jwks: kube-apiserver could not be reached")
        return "https://kubernetes.default.svc.cluster.local", self.jwks()


def sign(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, payload: object, kid: str,
         header: dict | None = None) -> str:
    """A JWT over ``payload`` signed with ``key`` (RS256 or ES256 by its type)."""
    algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    head = header if header is not None else {"alg": algorithm, "kid": kid}
    signed = f"{b64url(json.dumps(head).encode())}.{b64url(json.dumps(payload).encode())}"
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = decode_dss_signature(key.sign(signed.encode(), ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signed}.{b64url(signature)}"
