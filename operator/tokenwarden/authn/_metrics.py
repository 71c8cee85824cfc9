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
