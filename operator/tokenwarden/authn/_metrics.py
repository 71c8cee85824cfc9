"""Prometheus metrics of the authenticator. Labels never carry a token, a hash or a prefix of one."""
import time

from bisect import bisect_left

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

TOKENS_BY_PHASE = Gauge("tokenwarden_authenticator_tokens", "Tokens the authenticator knows, by kind and phase.",
                        ["kind", "phase"])
LAST_USED_WRITES = Counter("tokenwarden_last_used_writes_total",
                           "Writes of last use to a namespace's TokenUsage.", ["result"])
RELISTS = Counter("tokenwarden_authenticator_relists_total",
                  "Full listings of a kind that replaced the index's contents, by why: start, expired "
                  "(a watch's resourceVersion was too old, 410), error (a watch ended by another error).",
                  ["kind", "reason"])
WORKLOAD_REVIEWS = Counter("tokenwarden_workload_tokenreviews_total",
                           "TokenReviews of Kubernetes service-account tokens sent to kube-apiserver, by result: "
                           "authenticated, rejected, error (no answer).", ["result"])
WORKLOAD_CACHE = Counter("tokenwarden_workload_cache_total",
                         "Lookups of a workload token's TokenReview answer in the cache: hit or miss.", ["result"])
WORKLOAD_REFUSALS = Counter("tokenwarden_workload_refusals_total",
                            "Workload tokens refused at /verify, by reason: malformed, audience, expired, "
                            "unknown-key, signature, not-service-account (before any TokenReview), "
                            "issuer-keys-unavailable, rejected, unbound, ambiguous, disabled, deleted, "
                            "review-rate-limited, review-unavailable.", ["reason"])
ISSUER_KEY_READS = Counter("tokenwarden_workload_issuer_key_reads_total",
                           "Reads of the service-account issuer's signing keys (/openid/v1/jwks), by result: "
                           "ok or error.", ["result"])
ISSUER_KEYS = Gauge("tokenwarden_workload_issuer_keys",
                    "Signing keys of the service-account issuer the authenticator checks workload tokens with.")


class Verifications:
    """``tokenwarden_verifications_total{endpoint, result}`` and the histogram
    ``tokenwarden_verify_duration_seconds{endpoint}``, counted on the event loop in plain numbers
    and read at scrape time: a prometheus_client child takes a lock on every inc and observe, a
    good part of what /verify costs beyond aiohttp's own work. The histogram is also exported
    under its earlier name, ``tokenwarden_verify_seconds``, until the next release."""

    HISTOGRAMS = (("tokenwarden_verify_duration_seconds", "Time to verify one request."),
                  ("tokenwarden_verify_seconds", "Deprecated: tokenwarden_verify_duration_seconds."))

    BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1)

    def __init__(self) -> None:
        self.results: dict[tuple[str, str], int] = {}  # (endpoint, result) → count
        self.times: dict[str, list[int]] = {}  # endpoint → count per bucket, the last one +Inf
        self.sums: dict[str, float] = {}

    def count(self, endpoint: str, result: str) -> None:
        key = (endpoint, result)
        self.results[key] = self.results.get(key, 0) + 1

    def observe(self, endpoint: str, seconds: float) -> None:
        counts = self.times.get(endpoint)
        if counts is None:
            counts = self.times[endpoint] = [0] * (len(self.BUCKETS) + 1)
            self.sums[endpoint] = 0.0
        counts[bisect_left(self.BUCKETS, seconds)] += 1  # the first bucket whose bound is >= seconds
        self.sums[endpoint] += seconds

    def collect(self):
        total = CounterMetricFamily("tokenwarden_verifications", "Token verifications by endpoint and result.",
                                    labels=["endpoint", "result"])
        for (endpoint, result), count in list(self.results.items()):
            total.add_metric([endpoint, result], count)
        yield total
        histograms = [HistogramMetricFamily(name, help, labels=["endpoint"]) for name, help in self.HISTOGRAMS]
        for endpoint, counts in list(self.times.items()):
            cumulative, running = [], 0
            for bound, count in zip((*self.BUCKETS, float("inf")), counts):
                running += count
                cumulative.append((floatToGoString(bound), running))
            for histogram in histograms:
                histogram.add_metric([endpoint], cumulative, self.sums[endpoint])
        yield from histograms


class Responses:
    """``tokenwarden_authenticator_responses_total{endpoint, code}``: the public port's answers
    by endpoint (verify, tokenreview, other) and HTTP status, a failed handler's 500 included,
    for the ratio of 5xx answers. Plain counts on the event loop, as Verifications'."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = {}  # (endpoint, code) → count

    def count(self, endpoint: str, code: int) -> None:
        key = (endpoint, code)
        self.counts[key] = self.counts.get(key, 0) + 1

    def collect(self):
        family = CounterMetricFamily("tokenwarden_authenticator_responses",
                                     "Answers of the public port by endpoint and HTTP status code.",
                                     labels=["endpoint", "code"])
        for (endpoint, code), count in list(self.counts.items()):
            family.add_metric([endpoint, str(code)], count)
        yield family


class CredentialVerifications:
    """``tokenwarden_credential_verifications_total{namespace, kind, name, result}``: each known
    credential's verifications by result, for at most ``limit`` credentials at once (0: none);
    verifications of credentials past the limit are counted in
    ``tokenwarden_credential_verifications_untracked_total``. A credential's series go when it is
    deleted. Plain counts, touched only on the event loop: one dict lookup and an add per request."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self.counts: dict[tuple[str, str, str], dict[str, int]] = {}  # (namespace, kind, name) → result → count
        self.untracked = 0

    def record(self, namespace: str, kind: str, name: str, result: str) -> None:
        counts = self.counts.get((namespace, kind, name))
        if counts is None:
            if len(self.counts) >= self.limit:
                self.untracked += 1
                return
            counts = self.counts[(namespace, kind, name)] = {}
        counts[result] = counts.get(result, 0) + 1

    def forget(self, namespace: str, kind: str, name: str) -> None:
        self.counts.pop((namespace, kind, name), None)

    def collect(self):
        family = CounterMetricFamily("tokenwarden_credential_verifications",
                                     "Verifications of each credential by result (ok, expired, revoked, ...), "
                                     "for a bounded number of credentials.",
                                     labels=["namespace", "kind", "name", "result"])
        for key, counts in list(self.counts.items()):
            for result, count in list(counts.items()):
                family.add_metric([*key, result], count)
        yield family
        yield CounterMetricFamily("tokenwarden_credential_verifications_untracked",
                                  "Verifications of credentials past the per-credential limit (not in "
                                  "tokenwarden_credential_verifications_total).", value=self.untracked)


class IndexSync:
    """``tokenwarden_authenticator_last_sync_timestamp_seconds{kind}``: when each reflector's part
    of the index was last known to match the API server: now while its watch runs, the moment
    it broke while it is broken, nothing before its first listing."""

    def __init__(self) -> None:
        self.reflectors: list = []

    def collect(self):
        family = GaugeMetricFamily("tokenwarden_authenticator_last_sync_timestamp_seconds",
                                   "When the index of a kind was last known current (seconds since the epoch): "
                                   "now while its watch runs, when it broke while it is broken.", labels=["kind"])
        now = time.time()
        for reflector in self.reflectors:
            if not reflector.synced:
                continue
            broken_since = reflector.broken_since
            family.add_metric([reflector.kind],
                              now if broken_since is None else now - (reflector.clock() - broken_since))
        yield family


INDEX_SYNC = IndexSync()
REGISTRY.register(INDEX_SYNC)


VERIFICATIONS = Verifications()
REGISTRY.register(VERIFICATIONS)


RESPONSES = Responses()
REGISTRY.register(RESPONSES)


CREDENTIAL_VERIFICATIONS = CredentialVerifications()
REGISTRY.register(CREDENTIAL_VERIFICATIONS)
