"""The suite's tiers: which tests belong to each, how they are spread over test processes, and
how long each took against its budget, printed at the end of every run.

``make test`` runs the tiers side by side with pytest-xdist (``-n``, ``--dist loadgroup``): most
of their time is spent waiting on an API server, a kubelet or a token renewal, not on a core.
Each test file is one group, so a file's fixtures start once, in one process; the node tier is
one group of its own, since its files share one node and run in order; the fault tier's seeds
are spread, one per group, since each takes minutes. The longest tiers are handed out first. Without ``-n`` the same tests run one after another, as before.

A tier over its budget is reported, not failed: time is measured in bench/, never asserted.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Tier:
    name: str
    prefix: str  # the tests it holds: their paths start with this
    budget: float  # seconds of wall time, first test's start to last test's end
    order: int  # lower is handed out first
    spread: bool = False  # each test a group of its own (they share no fixture but the session's)


# Most specific first: a test belongs to the first tier whose prefix its path starts with.
TIERS = (
    Tier("node", "tests/e2e/", 600, 0),
    Tier("faults", "tests/integration/test_faults.py", 360, 1, spread=True),  # one seed per process
    Tier("integration", "tests/integration/", 600, 2),
    Tier("bad input", "tests/bad_input/", 120, 3),
    Tier("release", "tests/release/", 180, 3),
    Tier("fuzz", "tests/fuzz/", 120, 3),
    Tier("unit", "tests/unit/", 60, 4),
)

def tier_of(path: str) -> Tier | None:
    return next((tier for tier in TIERS if path.startswith(tier.prefix)), None)


def _path(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config, items):
    def order(item) -> int:
        tier = tier_of(_path(item.nodeid))
        return tier.order if tier else len(TIERS)

    items.sort(key=order)  # stable: a file's tests keep their order
    for item in items:
        path = _path(item.nodeid)
        tier = tier_of(path)
        if tier and tier.name == "node":
            group = "node"
        elif tier and tier.spread:
            group = item.nodeid
        else:
            group = path
        item.add_marker(pytest.mark.xdist_group(group))


def summarise(request, section: str, lines: list[str]) -> None:
    """Lines for the end of the run, under ``section``: they travel with the test's report, so
    they reach the summary from a worker process as well."""
    request.node.user_properties.append(("summary", (section, list(lines))))


class TierClock:
    """Each tier's span of wall time, from the reports of its tests' phases, and the lines tests
    left for the summary. Reports reach the only process, or the controller under xdist."""

    def __init__(self) -> None:
        self.spans: dict[str, tuple[float, float]] = {}
        self.busy: dict[str, float] = {}  # the tier's tests' own time, setup and teardown included
        self.sections: dict[str, list[str]] = {}

    def pytest_runtest_logreport(self, report):
        tier = tier_of(_path(report.nodeid))
        if tier is not None:
            start, stop = self.spans.get(tier.name, (report.start, report.stop))
            self.spans[tier.name] = (min(start, report.start), max(stop, report.stop))
            self.busy[tier.name] = self.busy.get(tier.name, 0.0) + report.duration
        if report.when == "teardown":  # every phase's report carries them; take them once
            for key, value in report.user_properties:
                if key == "summary":
                    section, lines = value
                    self.sections.setdefault(section, []).extend(lines)

    def pytest_terminal_summary(self, terminalreporter):
        for section, lines in self.sections.items():
            terminalreporter.section(section)
            for line in lines:
                terminalreporter.write_line(line)
        if not self.spans:
            return
        terminalreporter.section("tiers: wall time against budget, and the tests' own time one after another")
        for tier in TIERS:
            if tier.name in self.spans:
                start, stop = self.spans[tier.name]
                took = stop - start
                note = "" if took <= tier.budget else f"  OVER BUDGET by {took - tier.budget:.0f} s"
                terminalreporter.write_line(f"{tier.name:<12} {took:7.0f} s  (budget {tier.budget:.0f} s; "
                                            f"tests {self.busy[tier.name]:.0f} s){note}")
        first = min(start for start, _ in self.spans.values())
        last = max(stop for _, stop in self.spans.values())
        terminalreporter.write_line(f"{'all tiers':<12} {last - first:7.0f} s  (tests {sum(self.busy.values()):.0f} s)")


def pytest_configure(config):
    config.pluginmanager.register(TierClock(), "tokenwarden-tier-clock")
