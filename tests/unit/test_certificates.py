"""The operator's own certificates: when a serving certificate is issued again, the steps of a
CA's life, what clients are told to trust, and the CA Secret each step leaves behind."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tokenwarden.config import Certificates
from tokenwarden.handlers._certificates import (
    BUNDLE,
    CERT,
    NEXT_CERT,
    PREVIOUS_CERT,
    _next_ca,
    authority_of,
)
from tokenwarden.kube._certificates import StoredSecret
from tokenwarden.policies._certificates import (
    CREATE,
    EXPIRES_SOON,
    INTRODUCE,
    ISSUER_CHANGED,
    KEY_MISMATCH,
    LIFETIME_SHORTENED,
    MISSING,
    NAMES_CHANGED,
    RETIRE,
    RETIRE_AT_ANNOTATION,
    ROTATE_CA_ANNOTATION,
    ROTATION_REQUESTED,
    SWITCH,
    SWITCH_AT_ANNOTATION,
    Authority,
    CertFacts,
    ServingCert,
    authority_step,
    default_renew_before,
    serving_renewal,
    trust_bundle,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)
NAMES = frozenset({"tw-webhook.ns.svc", "tw-webhook.ns"})
LIFETIME, RENEW_BEFORE = 90 * DAY, 30 * DAY


def _cert(issued: datetime, lifetime: timedelta = LIFETIME, names=NAMES, *, key_matches=True, signed=True):
    facts = CertFacts(issued - timedelta(minutes=5), issued + lifetime, frozenset(names), 1)
    return ServingCert(facts, key_matches=key_matches, signed_by_signing_ca=signed)


@pytest.mark.parametrize("cert, reason", [
    (None, MISSING),
    (_cert(NOW - DAY, key_matches=False), KEY_MISMATCH),
    (_cert(NOW - DAY, signed=False), ISSUER_CHANGED),
    (_cert(NOW - DAY, names={"tw-webhook.ns.svc"}), NAMES_CHANGED),
    (_cert(NOW - 60 * DAY), EXPIRES_SOON),  # exactly at the renewal point
    (_cert(NOW - 89 * DAY), EXPIRES_SOON),
    (_cert(NOW - 100 * DAY), EXPIRES_SOON),  # expired already
    (_cert(NOW - DAY, lifetime=365 * DAY), LIFETIME_SHORTENED),  # issued under a longer setting
    (_cert(NOW - DAY), None),
    (_cert(NOW - 59 * DAY), None),
    (_cert(NOW), None),  # just issued: valid for exactly the lifetime
])
def test_when_a_serving_certificate_is_issued_again(cert, reason):
    step = serving_renewal(cert, names=NAMES, now=NOW, lifetime=LIFETIME, renew_before=RENEW_BEFORE)
    assert (step.reason if step else None) == reason
    if step:
        assert step.action == CREATE and step.message


def test_names_changed_names_what_changed():
    step = serving_renewal(_cert(NOW, names={"tw-webhook.ns.svc", "old.example"}), names=NAMES, now=NOW,
                           lifetime=LIFETIME, renew_before=RENEW_BEFORE)
    assert "missing: tw-webhook.ns" in step.message and "no longer wanted: old.example" in step.message


def test_renewal_comes_after_two_thirds_of_the_lifetime_by_default():
    assert default_renew_before(90 * DAY) == 30 * DAY
    assert default_renew_before(timedelta(seconds=30)) == timedelta(seconds=10)


CA = CertFacts(NOW - 365 * DAY, NOW + 9 * 365 * DAY, frozenset(), 7)
OVERLAP = 7 * DAY


@pytest.mark.parametrize("authority, action", [
    (None, CREATE),
    (Authority(CA), None),
    (Authority(CA, rotation_requested=True), INTRODUCE),
    (Authority(CertFacts(CA.not_before, NOW + DAY, frozenset(), 7)), INTRODUCE),  # near its end
    (Authority(CA, introduced=CA, switch_at=NOW + DAY), None),  # published, waiting for the overlap
    (Authority(CA, introduced=CA, switch_at=NOW + DAY, rotation_requested=True), None),  # one at a time
    (Authority(CA, introduced=CA, switch_at=NOW), SWITCH),
    (Authority(CA, introduced=CA, switch_at=None), SWITCH),  # an unreadable time: due now
    (Authority(CA, retired=True, retire_at=NOW + DAY), None),
    (Authority(CA, retired=True, retire_at=NOW - DAY), RETIRE),
])
def test_the_steps_of_a_cas_life(authority, action):
    step = authority_step(authority, now=NOW, renew_before=3 * 365 * DAY / 3, overlap=OVERLAP)
    assert (step.action if step else None) == action


def test_a_requested_rotation_says_so():
    step = authority_step(Authority(CA, rotation_requested=True), now=NOW, renew_before=DAY, overlap=OVERLAP)
    assert step.reason == ROTATION_REQUESTED and ROTATE_CA_ANNOTATION in step.message


def test_the_trust_bundle_lists_each_ca_once_the_signing_one_first():
    a, b = b"-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n", b"-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----"
    assert trust_bundle(a, None, b, a) == a + b + b"\n"
    assert trust_bundle(a) == a
    assert trust_bundle(None, b"") == b""


def _stored(data: dict, annotations: dict) -> StoredSecret:
    stored = StoredSecret.__new__(StoredSecret)
    stored.name, stored.data, stored.annotations, stored.resource_version = "tw-ca", data, annotations, "1"
    return stored


def test_a_rotation_publishes_the_new_ca_before_it_signs_and_the_old_one_after():
    """Walk a CA Secret through create, introduce, switch and retire: at every step the bundle
    holds every CA that signed a certificate a server may still present."""
    config = Certificates(caRotationOverlap="7d")
    data, annotations = _next_ca(CREATE, None, "tw-ca", config, NOW)
    first = data[CERT]
    assert data[BUNDLE] == trust_bundle(first)
    secret = _stored(data, {**annotations, ROTATE_CA_ANNOTATION: "now"})
    assert authority_step(authority_of(secret), now=NOW, renew_before=DAY, overlap=OVERLAP).action == INTRODUCE

    data, annotations = _next_ca(INTRODUCE, secret, "tw-ca", config, NOW)
    second = data[NEXT_CERT]
    assert data[CERT] == first, "the old CA still signs"
    assert data[BUNDLE] == trust_bundle(first, second), "both are published"
    assert ROTATE_CA_ANNOTATION not in annotations, "the request is answered once"
    assert annotations[SWITCH_AT_ANNOTATION] == "2026-06-08T12:00:00Z"
    secret = _stored(data, annotations)
    assert authority_step(authority_of(secret), now=NOW + DAY, renew_before=DAY, overlap=OVERLAP) is None

    later = NOW + OVERLAP
    data, annotations = _next_ca(SWITCH, secret, "tw-ca", config, later)
    assert data[CERT] == second and data[PREVIOUS_CERT] == first
    assert data[BUNDLE] == trust_bundle(second, first)
    assert NEXT_CERT not in data and SWITCH_AT_ANNOTATION not in annotations
    assert annotations[RETIRE_AT_ANNOTATION] == "2026-06-15T12:00:00Z"
    secret = _stored(data, annotations)

    data, annotations = _next_ca(RETIRE, secret, "tw-ca", config, later + OVERLAP)
    assert data[BUNDLE] == trust_bundle(second) and PREVIOUS_CERT not in data
    assert authority_step(authority_of(_stored(data, annotations)), now=later + OVERLAP, renew_before=DAY,
                          overlap=OVERLAP) is None


def test_a_ca_secret_without_a_usable_ca_is_made_again():
    assert authority_of(None) is None
    assert authority_of(_stored({CERT: b"not a certificate", "tls.key": b"x"}, {})) is None


@pytest.mark.parametrize("values, words", [
    ({"servingLifetime": "30s", "renewBefore": "40s"}, "renewBefore (0:00:40) must be longer than 0s and shorter"),
    ({"servingLifetime": "20000d"}, "must be shorter than caLifetime"),
    ({"checkInterval": "0s"}, "must be longer than 0s"),
    ({"webhook": {"generate": True, "secretName": "a"}}, "needs secretName, caSecretName and names"),
])
def test_bad_certificate_settings_are_refused_naming_the_value(values, words):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as refused:
        Certificates.model_validate(values)
    assert words in str(refused.value)
