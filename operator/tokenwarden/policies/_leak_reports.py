"""Leak reports in the shape of GitHub's secret-scanning partner programme: a POST of
``[{token, type, url, source}]`` signed with ECDSA P-256 / SHA-256 over the raw body
(headers Github-Public-Key-Identifier and Github-Public-Key-Signature), answered with
``[{token_hash, token_type, label}]``. Pure: the keys, the signature check, the payload."""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

KEY_ID_HEADER = "Github-Public-Key-Identifier"
SIGNATURE_HEADER = "Github-Public-Key-Signature"
MAX_REPORTS = 1000  # matches in one POST
MAX_FIELD = 512     # of type, url and source, as kept in an event


class ReportRefused(Exception):
    """Not a report to act on; ``status`` is the HTTP answer (400, 401, 403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def load_keys(text: str) -> dict[str, ec.EllipticCurvePublicKey]:
    """Key identifier → public key, from GitHub's own format
    (``{"public_keys": [{"key_identifier", "key"}]}``, as api.github.com/meta/public_keys/secret_scanning
    serves it). ValueError naming the problem for anything else."""
    try:
        entries = json.loads(text)["public_keys"]
        keys = {entry["key_identifier"]: load_pem_public_key(entry["key"].encode()) for entry in entries}
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"the leak report keys are not GitHub's public_keys JSON "
                         f"({{\"public_keys\": [{{\"key_identifier\": …, \"key\": PEM}}]}}): {exc}") from None
    for key_id, key in keys.items():
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"leak report key {key_id!r} is not an ECDSA P-256 public key")
    return keys


def check_signature(keys: dict[str, ec.EllipticCurvePublicKey], key_id: str | None, signature: str | None,
                    body: bytes) -> None:
    """ReportRefused unless ``signature`` (base64 DER) is ``key_id``'s over ``body``."""
    if not key_id or not signature:
        raise ReportRefused(401, f"a leak report needs the {KEY_ID_HEADER} and {SIGNATURE_HEADER} headers")
    key = keys.get(key_id)
    if key is None:
        raise ReportRefused(403, "the report is signed with a key that is not configured")
    try:
        key.verify(base64.b64decode(signature, validate=True), body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        raise ReportRefused(403, "the report's signature does not match its body") from None


@dataclass(frozen=True)
class Report:
    token: str
    type: str
    url: str
    source: str

    @property
    def token_hash(self) -> str:
        """What the answer names the token by: the hex SHA-256 of the value, as the programme asks."""
        return hashlib.sha256(self.token.encode()).hexdigest()

    def describe(self) -> str:
        """For an event: where the value was found, never the value."""
        return f"type {self.type or '-'}, source {self.source or '-'}, url {self.url or '-'}"


def parse_reports(body: bytes) -> list[Report]:
    """The reported matches; ReportRefused(400) naming what is wrong."""
    try:
        items = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        raise ReportRefused(400, "the report is not JSON: expected [{token, type, url, source}]") from None
    if not isinstance(items, list) or len(items) > MAX_REPORTS:
        raise ReportRefused(400, f"expected a JSON array of at most {MAX_REPORTS} {{token, type, url, source}}")
    reports = []
    for number, item in enumerate(items):
        token = item.get("token") if isinstance(item, dict) else None
        if not isinstance(token, str) or not token:
            raise ReportRefused(400, f"item {number} has no token: expected {{token, type, url, source}}")
        fields = [item.get(name) for name in ("type", "url", "source")]
        reports.append(Report(token, *(str(f)[:MAX_FIELD] if f is not None else "" for f in fields)))
    return reports


def answer(report: Report, revoked: bool) -> dict:
    return {"token_hash": report.token_hash, "token_type": report.type,
            "label": "true_positive" if revoked else "false_positive"}
