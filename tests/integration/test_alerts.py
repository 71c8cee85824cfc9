"""The chart's alert rules and Grafana dashboard: the rules, rendered from the chart, pass
promtool's unit tests (tests/integration/alerts/), each alert has its runbook, whose link leads to
its section of the docs site, and the dashboard matches Grafana's dashboard schema with queries
that Prometheus parses."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tokenwarden import devcluster

CHART = Path(__file__).resolve().parents[2] / "charts" / "tokenwarden"
REPO = CHART.parents[1]
DOCS = REPO / "docs" / "alerts.md"
TESTS = Path(__file__).with_name("alerts") / "tokenwarden_test.yaml"


@pytest.fixture(scope="module")
def helm() -> Path:
    return devcluster.ensure_helm(log=lambda *_: None)


@pytest.fixture(scope="module")
def promtool() -> Path:
    return devcluster.ensure_promtool(log=lambda *_: None)


def render(helm: Path, template: str, *values: str, set_json: tuple[str, ...] = ()) -> dict:
    """``values`` as --set; ``set_json`` as --set-json, for numbers that are not integers (--set
    would make "0.01" a string)."""
    out = subprocess.run([str(helm), "template", "t", str(CHART), "--show-only", f"templates/{template}",
                          *(arg for value in values for arg in ("--set", value)),
                          *(arg for value in set_json for arg in ("--set-json", value))],
                         capture_output=True, text=True, check=True).stdout
    return yaml.safe_load(out)


def rules_of(helm: Path, *values: str, set_json: tuple[str, ...] = ()) -> list[dict]:
    return render(helm, "prometheusrule.yaml", "metrics.prometheusRule.enabled=true", *values,
                  set_json=set_json)["spec"]["groups"]


def run(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True)


def test_the_rendered_rules_pass_promtool_unit_tests(helm, promtool, tmp_path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rules_of(helm)}, sort_keys=False))
    shutil.copy(TESTS, tmp_path / TESTS.name)
    checked = run(promtool, "check", "rules", tmp_path / "rules.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run(promtool, "test", "rules", tmp_path / TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_is_tested_firing_and_quiet_and_has_a_runbook(helm):
    alerts = [rule for group in rules_of(helm) for rule in group["rules"]]
    tests = [case for group in yaml.safe_load(TESTS.read_text())["tests"] for case in group["alert_rule_test"]]
    headings = {re.sub(r"[^a-z0-9-]", "", line[3:].strip().lower().replace(" ", "-"))
                for line in DOCS.read_text().splitlines() if line.startswith("## ")}
    assert len(alerts) == 13
    for alert in alerts:
        name = alert["alert"]
        cases = [case for case in tests if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in cases), f"{name}: no test where it fires"
        assert any(not case["exp_alerts"] for case in cases), f"{name}: no test where it stays quiet"
        anchor = alert["annotations"]["runbook"].partition("#")[2]
        assert anchor == name.lower() and anchor in headings, f"{name}: no runbook section in docs/alerts.md"


def test_every_runbook_url_leads_to_its_section_of_the_docs_site(helm, tmp_path):
    """By default each runbook_url is a page of the published docs site (mkdocs.yml's site_url) and
    an anchor on it; the site, built, has that page and that anchor."""
    site_url = yaml.safe_load((REPO / "mkdocs.yml").read_text())["site_url"]
    site = tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--quiet", "--config-file",
                            str(REPO / "mkdocs.yml"), "--site-dir", str(site)],
                           capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert built.returncode == 0, built.stderr
    alerts = [rule for group in rules_of(helm) for rule in group["rules"]]
    assert alerts
    for alert in alerts:
        url = alert["annotations"]["runbook_url"]
        assert url.startswith(site_url), f"{alert['alert']}: {url} is not on the docs site {site_url}"
        page, _, anchor = url[len(site_url):].partition("#")
        assert anchor == alert["alert"].lower()
        html = site / page / "index.html"
        assert html.is_file(), f"{alert['alert']}: {url} names no page of the site"
        assert f'id="{anchor}"' in html.read_text(), f"{alert['alert']}: {url} names no anchor of {page}"


def test_thresholds_and_runbook_links_come_from_values(helm):
    alerts = {rule["alert"]: rule for group in rules_of(
        helm, "metrics.prometheusRule.expiringWithinDays=3", "metrics.prometheusRule.unusedForDays=7",
        "metrics.prometheusRule.probingPerSecond=2", "metrics.prometheusRule.indexStaleAfterSeconds=120",
        "metrics.prometheusRule.absentForMinutes=2", "metrics.prometheusRule.stuckForMinutes=60",
        "metrics.prometheusRule.runbookBaseURL=https://docs.example.org/alerts",
        set_json=("metrics.prometheusRule.authenticatorErrorRatio=0.01",
                  "metrics.prometheusRule.authenticatorLatencySeconds=0.025")) for rule in group["rules"]}
    assert "< 3 * 86400" in alerts["TokenwardenCredentialExpiringSoon"]["expr"]
    assert "> 7 * 86400" in alerts["TokenwardenCredentialUnused"]["expr"]
    assert "> 2" in alerts["TokenwardenProbing"]["expr"]
    assert "> 120" in alerts["TokenwardenAuthenticatorIndexStale"]["expr"]
    assert alerts["TokenwardenOperatorAbsent"]["for"] == alerts["TokenwardenAuthenticatorAbsent"]["for"] == "2m"
    assert alerts["TokenwardenCredentialFailed"]["for"] == alerts["TokenwardenCredentialPending"]["for"] == "60m"
    assert "> 0.01" in alerts["TokenwardenAuthenticatorErrors"]["expr"]
    assert "> 0.025" in alerts["TokenwardenAuthenticatorSlow"]["expr"]
    assert alerts["TokenwardenProbing"]["annotations"]["runbook_url"] == \
        "https://docs.example.org/alerts#tokenwardenprobing"
    # No base URL: no runbook_url, the runbook annotation stays.
    bare = [rule for group in rules_of(helm, "metrics.prometheusRule.runbookBaseURL=") for rule in group["rules"]]
    assert all("runbook_url" not in rule["annotations"] and rule["annotations"]["runbook"] for rule in bare)
    # Without an authenticator, none of its alerts.
    alone = {rule["alert"] for group in rules_of(helm, "authenticator.enabled=false") for rule in group["rules"]}
    assert not alone & {"TokenwardenAuthenticatorAbsent", "TokenwardenAuthenticatorErrors",
                        "TokenwardenAuthenticatorSlow"}
    assert "TokenwardenOperatorAbsent" in alone
    # Off by default: nothing rendered.
    none = subprocess.run([str(helm), "template", "t", str(CHART)], capture_output=True, text=True, check=True)
    assert "kind: PrometheusRule" not in none.stdout and "grafana_dashboard" not in none.stdout


def dashboard(helm: Path) -> tuple[dict, dict]:
    configmap = render(helm, "grafana-dashboard.yaml", "metrics.grafanaDashboard.enabled=true",
                       "metrics.grafanaDashboard.annotations.grafana_folder=Security")
    return configmap, json.loads(configmap["data"]["tokenwarden.json"])


def test_the_dashboard_configmap_matches_grafanas_schema(helm, tmp_path):
    configmap, board = dashboard(helm)
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Security"}
    path = tmp_path / "tokenwarden.json"
    path.write_text(json.dumps(board))
    checked = run(devcluster.ensure_dashboard_check(log=lambda *_: None), path)
    assert checked.returncode == 0, checked.stderr
    # The checker refuses what the schema does not know.
    board["panels"][0]["targets"][0]["exprr"] = board["panels"][0]["targets"][0].pop("expr")
    path.write_text(json.dumps(board))
    refused = run(devcluster.ensure_dashboard_check(log=lambda *_: None), path)
    assert refused.returncode == 1 and "unexpected field 'exprr'" in refused.stderr


# What Grafana puts in place of the dashboard's variables before it sends a query.
VARIABLES = {"$__rate_interval": "2m", "$namespace": ".*", "$expiring_days": "14", "$unused_days": "90"}


def dashboard_queries(board: dict) -> list[str]:
    queries = []
    for panel in board["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, f"panel {panel['title']!r}: an unknown variable in {target['expr']!r}"
            queries.append(expr)
    return queries


def test_every_panel_has_queries_that_prometheus_parses(helm, promtool, tmp_path):
    _, board = dashboard(helm)
    titles = " ".join(panel["title"].lower() for panel in board["panels"])
    for topic in ("expiring", "unused", "by result", "probing", "rotations", "restart", "index",
                  "authenticator latency", "verify", "tokenreview", "admission latency", "by status", "memory", "cpu"):
        assert topic in titles, f"no panel for {topic}"
    queries = dashboard_queries(board)
    rules = [{"record": f"tokenwarden:dashboard_query_{i}", "expr": expr} for i, expr in enumerate(queries)]
    (tmp_path / "queries.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = run(promtool, "check", "rules", tmp_path / "queries.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(queries)} rules found" in checked.stdout
