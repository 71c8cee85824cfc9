"""Prometheus metrics of the authenticator. Labels never carry a token, a hash or a prefix of one."""
from prometheus_client import Counter, Gauge, Histogram

VERIFICATIONS = Counter("tokenwarden_verifications_total", "Token verifications by endpoint and result.",
                        ["endpoint", "result"])
VERIFY_SECONDS = Histogram("tokenwarden_verify_seconds", "Time to verify one request.", ["endpoint"],
                           buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1))
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
                            "Workload tokens refused at /verify, by reason: malformed, audience, expired (before "
                            "any TokenReview), rejected, not-service-account, unbound, ambiguous, disabled, "
                            "deleted, review-rate-limited, review-unavailable.", ["reason"])
