"""When the operator makes, renews or rotates its own certificates (the admission webhook's and
the authenticator's), and what clients are told to trust. Pure: the facts of each certificate
and the clock come in, a step with its reason goes out.

A CA lives for years, because copies of it sit in places the operator cannot update (agents'
mounts, kube-apiserver's token-webhook configuration). Serving certificates live for weeks and
are renewed well before they expire. A CA is replaced in three steps, each after an overlap, so
that no client ever meets a certificate signed by a CA it has not been given yet:

1. introduce: the new CA is published beside the old one; the old one still signs;
2. switch: the new CA signs (serving certificates are issued again); both are still published;
3. retire: the old CA is no longer published.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# A request to replace a CA: any value on the CA's Secret (kubectl annotate ... tokenwarden.io/rotate-ca=now).
ROTATE_CA_ANNOTATION = "tokenwarden.io/rotate-ca"
# When an introduced CA starts signing, and when a replaced one stops being published (RFC 3339).
SWITCH_AT_ANNOTATION = "tokenwarden.io/ca-switch-at"
RETIRE_AT_ANNOTATION = "tokenwarden.io/ca-retire-at"

# Reasons (kept short: they are logged and counted).
MISSING = "Missing"
KEY_MISMATCH = "KeyMismatch"
ISSUER_CHANGED = "IssuerChanged"
NAMES_CHANGED = "NamesChanged"
EXPIRES_SOON = "ExpiresSoon"
LIFETIME_SHORTENED = "LifetimeShortened"
ROTATION_REQUESTED = "RotationRequested"
CREATE, INTRODUCE, SWITCH, RETIRE = "create", "introduce", "switch", "retire"
# Lifetimes are counted from issuance; a certificate may be a little longer than asked for.
LIFETIME_SLACK = timedelta(minutes=1)


@dataclass(frozen=True)
class CertFacts:
    """What the decisions need to know of a certificate."""

    not_before: datetime
    not_after: datetime
    names: frozenset[str]
    serial: int


@dataclass(frozen=True)
class Step:
    """Something to do, and why (a reason for metrics and logs, a message for people)."""

    action: str
    reason: str
    message: str


@dataclass(frozen=True)
class ServingCert:
    """A serving certificate as found in its Secret."""

    facts: CertFacts
    key_matches: bool  # the Secret's key belongs to the certificate
    signed_by_signing_ca: bool


def default_renew_before(lifetime: timedelta) -> timedelta:
    """Renew once two thirds of the lifetime have passed, as cert-manager does by default."""
    return lifetime / 3


def serving_renewal(cert: ServingCert | None, *, names: frozenset[str], now: datetime, lifetime: timedelta,
                    renew_before: timedelta) -> Step | None:
    """Why the serving certificate must be issued again now, or None when it serves on."""
    if cert is None:
        return Step(CREATE, MISSING, "there is no serving certificate yet")
    facts = cert.facts
    if not cert.key_matches:
        return Step(CREATE, KEY_MISMATCH, "the Secret's private key does not belong to its certificate")
    if not cert.signed_by_signing_ca:
        return Step(CREATE, ISSUER_CHANGED, "the certificate was not signed by the CA that signs now")
    if facts.names != names:
        missing, extra = sorted(names - facts.names), sorted(facts.names - names)
        return Step(CREATE, NAMES_CHANGED, f"the names changed (missing: {', '.join(missing) or '-'}; "
                                           f"no longer wanted: {', '.join(extra) or '-'})")
    if now >= facts.not_after - renew_before:
        return Step(CREATE, EXPIRES_SOON, f"it expires at {facts.not_after.isoformat()}, within {renew_before}")
    if facts.not_after - now > lifetime + LIFETIME_SLACK:
        return Step(CREATE, LIFETIME_SHORTENED, f"it is valid until {facts.not_after.isoformat()}, longer than "
                                                f"the lifetime of {lifetime} now configured")
    return None


@dataclass(frozen=True)
class Authority:
    """A CA's Secret as found: the CA that signs, and a rotation in progress if any."""

    signing: CertFacts
    introduced: CertFacts | None = None  # published, not signing yet
    switch_at: datetime | None = None
    retired: bool = False  # a replaced CA, still published
    retire_at: datetime | None = None
    rotation_requested: bool = False


def authority_step(authority: Authority | None, *, now: datetime, renew_before: timedelta,
                   overlap: timedelta) -> Step | None:
    """The next step of the CA's life, or None while there is nothing to do."""
    if authority is None:
        return Step(CREATE, MISSING, "there is no CA yet")
    if authority.introduced is not None:
        if authority.switch_at is None or now >= authority.switch_at:
            return Step(SWITCH, ROTATION_REQUESTED, "the new CA has been published for the overlap: it signs from now on")
        return None
    if authority.retired:
        if authority.retire_at is None or now >= authority.retire_at:
            return Step(RETIRE, ROTATION_REQUESTED, "the replaced CA has signed nothing served for the overlap: "
                                                   "it is no longer published")
        return None
    if authority.rotation_requested:
        return Step(INTRODUCE, ROTATION_REQUESTED, f"a new CA was asked for ({ROTATE_CA_ANNOTATION}): it is "
                                                   f"published beside the current one, and signs after {overlap}")
    if now >= authority.signing.not_after - renew_before:
        return Step(INTRODUCE, EXPIRES_SOON, f"the CA expires at {authority.signing.not_after.isoformat()}: a new "
                                             f"one is published beside it, and signs after {overlap}")
    return None


def trust_bundle(*pems: bytes | None) -> bytes:
    """The CA certificates clients trust, in order, each once: the one that signs first."""
    seen: list[bytes] = []
    for pem in pems:
        if pem and pem.strip() and pem.strip() not in seen:
            seen.append(pem.strip())
    return b"".join(p + b"\n" for p in seen)
