"""The chart's documentation keeps up with the chart: the compatibility page names the tested
Kubernetes version and the minimum the chart declares."""
from __future__ import annotations

from pathlib import Path

import yaml

from tokenwarden.devcluster._build import pinned_version

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "tokenwarden"


def test_the_compatibility_page_names_the_tested_version_and_the_minimum():
    page = (REPO / "docs" / "compatibility.md").read_text()
    for module in ("controlplane", "node"):
        tested = pinned_version(REPO / "hack" / module / "go.mod", "k8s.io/kubernetes").lstrip("v")
        assert f"| {tested} " in page, f"docs/compatibility.md: add {tested} (hack/{module}/go.mod) to the tested versions"
    kube_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    assert kube_version == ">=1.30.0-0"
    assert f'`kubeVersion: "{kube_version}"`' in page
