"""The operator's Prometheus metrics. Labels never carry a token, a hash or a prefix of one."""
from __future__ import annotations

import kopf
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from tokenwarden.kube._resources import GROUP, INGESTION_KEYS, SERVICE_TOKENS, VERSION

MINTED = Counter("tokenwarden_tokens_minted_total", "Tokens minted, by kind.", ["kind"])
MINT_SECONDS = Histogram("tokenwarden_mint_seconds", "Time to mint a token and write its Secret.", ["kind"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
EXPIRED = Counter("tokenwarden_tokens_expired_total", "Tokens expired, by kind.", ["kind"])
EXPIRY_LAG = Histogram("tokenwarden_expiry_lag_seconds", "Secret deleted minus expiresAt.", ["kind"],
                       buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
COLLECTED = Counter("tokenwarden_tokens_collected_total", "Expired tokens deleted after retention.", ["kind"])


def _phase_of(kind: str):
    def index(status: kopf.Status, **_):
        return {(kind, status.get("phase") or "Pending"): 1}
    return index


kopf.index(GROUP, VERSION, SERVICE_TOKENS.plural, id="phases_st")(_phase_of(SERVICE_TOKENS.kind))
kopf.index(GROUP, VERSION, INGESTION_KEYS.plural, id="phases_ik")(_phase_of(INGESTION_KEYS.kind))


class PhaseCollector:
    """``tokenwarden_tokens{kind, phase}`` read from kopf's in-memory indexes at scrape time."""

    def __init__(self) -> None:
        self.indexes: list = []

    def collect(self):
        family = GaugeMetricFamily("tokenwarden_tokens", "Tokens by kind and phase.", labels=["kind", "phase"])
        for index in self.indexes:
            for (kind, phase), store in list(index.items()):
                family.add_metric([kind, phase], len(list(store)))
        yield family


PHASES = PhaseCollector()
REGISTRY.register(PHASES)


@kopf.on.startup()
def expose_phases(phases_st: kopf.Index, phases_ik: kopf.Index, **_) -> None:
    PHASES.indexes = [phases_st, phases_ik]
