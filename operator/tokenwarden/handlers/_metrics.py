"""The operator's Prometheus metrics. Labels never carry a token, a hash or a prefix of one."""
from __future__ import annotations

import threading

import kopf
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

MINTED = Counter("tokenwarden_tokens_minted_total", "Tokens minted, by kind.", ["kind"])
_MINT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
MINT_DURATION = Histogram("tokenwarden_mint_duration_seconds", "Time to mint a token and write its Secret.",
                          ["kind"], buckets=_MINT_BUCKETS)
# Deprecated: the same observations under the name of earlier releases, until the next one.
MINT_SECONDS = Histogram("tokenwarden_mint_seconds", "Deprecated: tokenwarden_mint_duration_seconds.", ["kind"],
                         buckets=_MINT_BUCKETS)
EXPIRED = Counter("tokenwarden_tokens_expired_total", "Tokens expired, by kind.", ["kind"])
EXPIRY_LAG = Histogram("tokenwarden_expiry_lag_seconds", "Secret deleted minus expiresAt.", ["kind"],
                       buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
COLLECTED = Counter("tokenwarden_tokens_collected_total", "Expired tokens deleted after retention.", ["kind"])
ADMISSION_ENFORCED = Gauge(
    "tokenwarden_admission_enforced",
    "1 when the API server refuses a ServiceToken that admission must refuse (a dry run, at start and every "
    "5 minutes: handlers/_admission_check.py); 0 when it accepts it, or cannot be asked: any user who may "
    "create a ServiceToken may then grant any role.")
ADMISSION = ["kind", "operation", "result"]
ADMISSION_REQUESTS = Counter("tokenwarden_admission_requests_total",
                             "Admission reviews the webhook answered, by kind, operation and result: allowed, "
                             "denied, error (the handler failed).", ADMISSION)
ADMISSION_DENIALS = Counter("tokenwarden_admission_denials_total",
                            "Admission reviews denied, by kind, operation and reason (the reason the refusal "
                            "names: UnknownRole, QuotaExceeded, GrantNotAllowed, InvalidSpec, ...).",
                            ["kind", "operation", "reason"])
ADMISSION_DURATION = Histogram("tokenwarden_admission_duration_seconds",
                               "Time to answer an admission review (SubjectAccessReviews and recounts included), "
                               "by kind, operation and result.", ADMISSION,
                               buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


class PhaseCollector:
    """``tokenwarden_tokens{kind, phase}`` read from the operator's in-memory indexes at scrape time."""

    def __init__(self) -> None:
        self.phases = None

    def collect(self):
        family = GaugeMetricFamily("tokenwarden_tokens", "Tokens by kind and phase.", labels=["kind", "phase"])
        for (kind, phase), count in (self.phases.counts() if self.phases is not None else {}).items():
            family.add_metric([kind, phase], count)
        yield family


PHASES = PhaseCollector()
REGISTRY.register(PHASES)

CREDENTIAL = ["namespace", "kind", "name"]


class CredentialCollector:
    """Per-credential series, labelled by namespace, kind and name only, as cert-manager's are by
    certificate. The timestamps are read from the operator's index at scrape time, for tokens
    and keys whose phase is Active; the counters are kept here. Every series of a credential
    goes when the credential does (deleted, or, for the timestamps, no longer Active)."""

    def __init__(self) -> None:
        self.credentials = None
        self.activity = None  # handlers._listings.Activity: phases are shown by the active replica only
        # (namespace, kind, name) → {(counter, result): count}
        self.counts: dict[tuple[str, str, str], dict[tuple[str, str], int]] = {}
        self._lock = threading.Lock()  # handlers count from threads

    def count(self, counter: str, namespace: str, kind: str, name: str, result: str) -> None:
        with self._lock:
            counts = self.counts.setdefault((namespace, kind, name), {})
            counts[(counter, result)] = counts.get((counter, result), 0) + 1

    def collect(self):
        gauges = {
            "expires": GaugeMetricFamily("tokenwarden_credential_expiration_timestamp_seconds",
                                         "When the credential expires (seconds since the epoch).", labels=CREDENTIAL),
            "last_used": GaugeMetricFamily("tokenwarden_credential_last_used_timestamp_seconds",
                                           "When the credential was last used (status.lastUsedAt), if ever.",
                                           labels=CREDENTIAL),
            "next_rotation": GaugeMetricFamily("tokenwarden_credential_next_rotation_timestamp_seconds",
                                               "When the credential is next rotated (expiry minus renewBefore).",
                                               labels=CREDENTIAL),
            "created": GaugeMetricFamily("tokenwarden_credential_created_timestamp_seconds",
                                         "When the credential was created.", labels=CREDENTIAL),
        }
        counters = {
            "rotations": CounterMetricFamily("tokenwarden_credential_rotations",
                                             "Rotations of the credential, by result: rotated, leaked (no overlap), "
                                             "unsupported (an imported key), refused (a tokenwarden.io/rotate "
                                             "value too long), failed (an API error).",
                                             labels=[*CREDENTIAL, "result"]),
            "restarts": CounterMetricFamily("tokenwarden_credential_restarts",
                                            "Rollout restarts of the credential's restart targets after a rotation, "
                                            "by result: restarted, not_found, failed.", labels=[*CREDENTIAL, "result"]),
        }
        phases = GaugeMetricFamily("tokenwarden_credential_phase",
                                   "1 for the credential's phase (Pending, Active, Failed, Expired, Revoked), "
                                   "from the active operator replica only (a standby's view is as old as its "
                                   "start).", labels=[*CREDENTIAL, "phase"])
        show_phases = self.activity is not None and not self.activity.paused()
        existing = set()
        for key, entries in (self.credentials.items() if self.credentials is not None else ()):
            existing.add(key)
            times = entries[0]
            if show_phases:
                phases.add_metric([*key, times.phase], 1)
            if times.phase != "Active":
                continue
            for field, family in gauges.items():
                value = getattr(times, field)
                if value is not None:
                    family.add_metric(list(key), value)
        with self._lock:
            for key in [key for key in self.counts if key not in existing]:
                del self.counts[key]  # the credential is gone, and so are its counters
            for key, counts in self.counts.items():
                for (counter, result), value in counts.items():
                    counters[counter].add_metric([*key, result], value)
        yield from gauges.values()
        yield phases
        yield from counters.values()


CREDENTIALS = CredentialCollector()
REGISTRY.register(CREDENTIALS)


@kopf.on.startup()
def expose_phases(memo, **_) -> None:
    PHASES.phases = memo.indexes.phases
    CREDENTIALS.credentials = memo.indexes.credentials
    CREDENTIALS.activity = memo.activity
