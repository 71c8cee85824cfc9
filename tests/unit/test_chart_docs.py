"""The chart's documentation keeps up with the chart: the compatibility page names the tested
Kubernetes version and the minimum the chart declares; the README's values table and the
schema's descriptions come from values.yaml, and every value is described."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from tokenwarden import chartdocs
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


# -- the values table and the schema's descriptions, from values.yaml ---------------------------

SAMPLE = """\
# A note for readers of this file, not a description.
# -- The image.
image:
  # -- Image repository.
  repository: example/tw
  tag: ""
# -- Extra labels, as a whole.
podLabels:
  team: a
  # a note inside
  tier: b
list:
  - name: x
    # -- not a key of the values: a list item's
    value: y
# -- Port,
# on two lines.
port: 443
"""


def test_descriptions_follow_helm_docs_comments():
    assert chartdocs.descriptions(SAMPLE) == {
        ("image",): "The image.", ("image", "repository"): "Image repository.",
        ("podLabels",): "Extra labels, as a whole.", ("port",): "Port, on two lines."}


def test_rows_are_described_values_and_the_undescribed_leaves():
    rows = {row.name: (row.type, row.default, row.description) for row in chartdocs.rows(SAMPLE)}
    assert rows == {
        "image.repository": ("string", "example/tw", "Image repository."),
        "image.tag": ("string", "", ""),  # no comment above it, nor above image's other keys: a row of its own
        "podLabels": ("object", {"team": "a", "tier": "b"}, "Extra labels, as a whole."),
        "list": ("list", [{"name": "x", "value": "y"}], ""),
        "port": ("int", 443, "Port, on two lines."),
    }


def test_every_value_of_the_chart_is_described():
    undescribed = [row.name for row in chartdocs.rows((CHART / "values.yaml").read_text()) if not row.description]
    assert not undescribed, f"values.yaml: add a `# --` comment above {undescribed}"


def test_every_schema_property_has_a_description():
    schema = json.loads((CHART / "values.schema.json").read_text())
    missing = chartdocs.undescribed(schema)
    assert not missing, (f"values.schema.json: describe {missing} (a `# --` comment in values.yaml, then "
                         "`make chart-docs`; by hand for what values.yaml does not hold)")
    # The check sees a nested property without one.
    schema["properties"]["operator"]["properties"]["webhook"]["properties"]["port"].pop("description")
    assert chartdocs.undescribed(schema) == ["operator.webhook.port"]


def test_the_schema_descriptions_are_the_comments_of_values_yaml():
    schema = CHART / "values.schema.json"
    assert chartdocs.generated(REPO)[schema] == schema.read_text(), "run: make chart-docs"


def test_the_chart_readme_is_up_to_date(capsys):
    assert chartdocs.main(["--check", str(REPO)]) == 0, capsys.readouterr().out
    readme = (CHART / "README.md").read_text()
    assert "| networkPolicy.enabled | bool | `false` |" in readme


def test_a_stale_readme_is_reported(tmp_path, capsys):
    chart = tmp_path / "charts" / "tokenwarden"
    chart.mkdir(parents=True)
    for name in ("values.yaml", "values.schema.json", "README.md"):
        (chart / name).write_text((CHART / name).read_text())
    with (chart / "values.yaml").open("a") as values:
        values.write("# -- A value added without regenerating the README.\nnewValue: 1\n")
    assert chartdocs.main(["--check", str(tmp_path)]) == 1
    assert "out of date: charts/tokenwarden/README.md" in capsys.readouterr().out
