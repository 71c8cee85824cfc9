"""Leak reports in GitHub's secret-scanning partner format: keys, signatures, payloads."""
from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tokenwarden.policies._leak_reports import ReportRefused, answer, check_signature, load_keys, parse_reports


def _pem(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _keys(**private) -> dict:
    return load_keys(json.dumps({"public_keys": [{"key_identifier": k, "key": _pem(v), "is_current": True}
                                                 for k, v in private.items()]}))


def _sign(key, body: bytes) -> str:
    return base64.b64encode(key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()


def test_only_a_configured_key_over_the_very_body_passes():
    mine, theirs = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    keys = _keys(k1=mine)
    body = b'[{"token":"twst_x","type":"t","url":"u","source":"content"}]'
    check_signature(keys, "k1", _sign(mine, body), body)
    for key_id, signature, status in (("k1", _sign(mine, body + b"\n"), 403), ("k1", _sign(theirs, body), 403),
                                      ("k2", _sign(theirs, body), 403), ("k1", "%%%", 403), (None, None, 401),
                                      ("k1", "", 401)):
        with pytest.raises(ReportRefused) as refused:
            check_signature(keys, key_id, signature, body)
        assert refused.value.status == status


def test_keys_must_be_p256_in_githubs_format():
    with pytest.raises(ValueError, match="public_keys JSON"):
        load_keys('{"keys": []}')
    with pytest.raises(ValueError, match="not an ECDSA P-256"):
        _keys(rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with pytest.raises(ValueError, match="not an ECDSA P-256"):
        _keys(p384=ec.generate_private_key(ec.SECP384R1()))


def test_reports_and_answers():
    reports = parse_reports(b'[{"token": "a", "type": "twst", "url": "https://x", "source": "npm"}, {"token": "b"}]')
    assert [(r.token, r.type, r.source) for r in reports] == [("a", "twst", "npm"), ("b", "", "")]
    assert "a" not in reports[0].describe() and "https://x" in reports[0].describe()
    assert answer(reports[0], True) == {"token_hash": hashlib.sha256(b"a").hexdigest(), "token_type": "twst",
                                        "label": "true_positive"}
    assert answer(reports[1], False)["label"] == "false_positive"
    for body in (b"nope", b"{}", b'[{"token": 5}]', b"[" + b'{"token":"a"},' * 1000 + b'{"token":"a"}]'):
        with pytest.raises(ReportRefused) as refused:
            parse_reports(body)
        assert refused.value.status == 400


def test_a_report_nested_past_the_parsers_limit_is_a_400():
    """Found by the fuzz tier: json.loads raised RecursionError, which the endpoint answered with a 500."""
    with pytest.raises(ReportRefused) as refused:
        parse_reports(b"[" * 6000)
    assert refused.value.status == 400 and "not JSON" in str(refused.value)
