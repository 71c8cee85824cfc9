"""The fuzz tier: hypothesis throws generated tokens, JWT parts, headers, query strings and
TokenReview bodies at the authenticator, in-process, with no cluster.

Two profiles, chosen by HYPOTHESIS_PROFILE:
- ``ci`` (the default, what ``make test`` runs): derandomized, no example database, a fixed
  number of examples per test. It draws nothing at random: every run tries the same inputs.
- ``explore`` (``make fuzz-inputs``): random, many more examples, failures kept in
  .hypothesis/ so that they are tried first next time.
Neither has a deadline: the machine is shared, and a slow example is no failure.
A failing example the explorer finds becomes a plain regression test beside the others.
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

CI_EXAMPLES = 150
settings.register_profile("ci", derandomize=True, database=None, max_examples=CI_EXAMPLES, deadline=None,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "20000")), deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
