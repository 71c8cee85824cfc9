"""Leaked tokens: what the operator counts of them."""
from __future__ import annotations

from prometheus_client import Counter

LEAK_ROTATIONS = Counter("tokenwarden_leak_revocations_total",
                         "Leaked tokens replaced: the leaked value refused, a successor minted with no overlap.",
                         ["kind"])
LEAK_REPORTS = Counter("tokenwarden_leak_reports_total",
                       "Values reported leaked at the leak-report endpoint, by result: revoked, false_positive "
                       "(no credential holds it); refused counts reports turned away (signature, format).",
                       ["result"])
