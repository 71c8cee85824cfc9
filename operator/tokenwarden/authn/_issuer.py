"""A workload token's signature, checked against the keys of the cluster's service-account
issuer before any TokenReview is spent: a made-up JWT never reaches kube-apiserver, and the
subject (so the namespace) of a token that passes can be trusted.

The check uses ``cryptography`` directly, already a dependency: kube-apiserver signs with RS256
(an RSA key) or ES256/384/512 (an EC key) and always names the key (``kid``), so the check is
a dictionary lookup and one verify call, with no JWT library's claim handling to configure
around. The keys are read through kube-apiserver (service-account issuer discovery, then
/openid/v1/jwks) with the authenticator's own credentials: at the first workload token, and
again when a token names a key not among them, at most once per ``refresh_interval`` and one
read at a time, so a flood of made-up key ids costs the endpoint one read per interval.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tokenwarden.authn._jwt import Claims
from tokenwarden.authn._metrics import ISSUER_KEY_READS, ISSUER_KEYS
from tokenwarden.kube._issuer import IssuerUnavailable

logger = logging.getLogger("tokenwarden.authenticator")

_RSA = {"RS256": hashes.SHA256, "RS384": hashes.SHA384, "RS512": hashes.SHA512}
_EC = {"P-256": ("ES256", ec.SECP256R1, hashes.SHA256), "P-384": ("ES384", ec.SECP384R1, hashes.SHA384),
       "P-521": ("ES512", ec.SECP521R1, hashes.SHA512)}

# fetch() -> (issuer, JSON Web Keys), called in a thread; raises IssuerUnavailable.
Fetch = Callable[[], tuple[str, list[dict]]]


def _number(text: object) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True)
class IssuerKey:
    """One public key of the issuer and the algorithms it signs with."""

    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    algorithms: dict[str, type[hashes.HashAlgorithm]]  # alg -> its hash

    def verifies(self, algorithm: str, signed: bytes, signature: bytes) -> bool:
        digest = self.algorithms.get(algorithm)
        if digest is None:  # never "none", never HS256 with the public key as its secret
            return False
        try:
            if isinstance(self.key, rsa.RSAPublicKey):
                self.key.verify(signature, signed, padding.PKCS1v15(), digest())
            else:
                size = (self.key.curve.key_size + 7) // 8
                if len(signature) != 2 * size:
                    return False
                der = encode_dss_signature(int.from_bytes(signature[:size], "big"),
                                           int.from_bytes(signature[size:], "big"))
                self.key.verify(der, signed, ec.ECDSA(digest()))
        except (InvalidSignature, ValueError):
            return False
        return True


def issuer_key(jwk: dict) -> IssuerKey | None:
    """The key a JSON Web Key describes; None for one that does not sign, or that is not RSA
    or EC on a NIST curve."""
    if jwk.get("use", "sig") != "sig":
        return None
    try:
        if jwk.get("kty") == "RSA":
            n, e = _number(jwk.get("n")), _number(jwk.get("e"))
            if n is None or e is None:
                return None
            return IssuerKey(rsa.RSAPublicNumbers(e, n).public_key(), dict(_RSA))
        if jwk.get("kty") == "EC" and jwk.get("crv") in _EC:
            algorithm, curve, digest = _EC[jwk["crv"]]
            x, y = _number(jwk.get("x")), _number(jwk.get("y"))
            if x is None or y is None:
                return None
            return IssuerKey(ec.EllipticCurvePublicNumbers(x, y, curve()).public_key(), {algorithm: digest})
    except ValueError:  # not a valid key (a point off the curve, a modulus too small)
        return None
    return None


class IssuerKeys:
    """The issuer's signing keys by key id, read when needed (see the module's docstring)."""

    def __init__(self, fetch: Fetch, clock: Callable[[], float], refresh_interval: float = 10.0) -> None:
        self.fetch = fetch
        self.clock = clock
        self.refresh_interval = refresh_interval
        self.keys: dict[str, IssuerKey] = {}
        self.issuer = ""
        self.loaded = False           # keys were read at least once
        self.last_read: float | None = None
        self.reading: asyncio.Future | None = None

    async def check(self, claims: Claims) -> str | None:
        """None when one of the issuer's keys signed the token; else why not: unknown-key (no
        key of that id), signature (not signed by it), issuer-keys-unavailable (never read)."""
        if not self.loaded or claims.key_id not in self.keys:
            await self.refresh()
        key = self.keys.get(claims.key_id)
        if key is None:
            return "unknown-key" if self.loaded else "issuer-keys-unavailable"
        return None if key.verifies(claims.algorithm, claims.signed, claims.signature) else "signature"

    async def refresh(self) -> None:
        """Read the keys again unless they were read less than ``refresh_interval`` ago; calls
        that come during a read wait for it rather than read again."""
        if self.reading is not None:
            await asyncio.shield(self.reading)
            return
        now = self.clock()
        if self.last_read is not None and now - self.last_read < self.refresh_interval:
            return
        self.last_read = now
        reading = self.reading = asyncio.get_running_loop().create_future()
        try:
            issuer, jwks = await asyncio.to_thread(self.fetch)
        except Exception as exc:  # IssuerUnavailable, or anything else: never a 500 on the request path
            ISSUER_KEY_READS.labels(result="error").inc()
            why = str(exc) if isinstance(exc, IssuerUnavailable) else f"{type(exc).__name__}: {exc}"
            # At most one line per interval: reads are.
            logger.warning("cannot read the service-account issuer's keys, so workload tokens are refused "
                           "(503) until they are read: %s", why)
        else:
            ISSUER_KEY_READS.labels(result="ok").inc()
            keys = {jwk["kid"]: key for jwk in jwks
                    if isinstance(jwk.get("kid"), str) and (key := issuer_key(jwk)) is not None}
            if set(keys) != set(self.keys) or not self.loaded:
                logger.info("service-account issuer %s: %d signing key(s)", issuer or "(unnamed)", len(keys))
            self.keys, self.issuer, self.loaded = keys, issuer, True
            ISSUER_KEYS.set(len(keys))
        finally:
            self.reading = None
            reading.set_result(None)
