"""The operator's Prometheus metrics. Labels never carry a token, a hash or a prefix of one."""
from __future__ import annotations

import kopf
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

MINTED = Counter("tokenwarden_tokens_minted_total", "Tokens minted, by kind.", ["kind"])
MINT_SECONDS = Histogram("tokenwarden_mint_seconds", "Time to mint a token and write its Secret.", ["kind"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
EXPIRED = Counter("tokenwarden_tokens_expired_total", "Tokens expired, by kind.", ["kind"])
EXPIRY_LAG = Histogram("tokenwarden_expiry_lag_seconds", "Secret deleted minus expiresAt.", ["kind"],
                       buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
COLLECTED = Counter("tokenwarden_tokens_collected_total", "Expired tokens deleted after retention.", ["kind"])


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


@kopf.on.startup()
def expose_phases(memo, **_) -> None:
    PHASES.phases = memo.indexes.phases
