"""The GitHub workflows in .github/workflows cannot run here, so they are checked here:
actionlint (built from the Go module pinned in hack/actionlint, cached like helm) finds
nothing in them, and what they take from the repository matches it."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tokenwarden import devcluster

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"


@pytest.fixture(scope="module")
def actionlint() -> Path:
    return devcluster.ensure_actionlint(log=lambda *_: None)


def lint(actionlint: Path, *files: Path) -> subprocess.CompletedProcess:
    # shellcheck and pyflakes, which actionlint runs on `run:` scripts when it finds them on
    # PATH, are turned off so that the result is the same on every machine.
    return subprocess.run([str(actionlint), "-no-color", "-shellcheck=", "-pyflakes=", *map(str, files)],
                          cwd=REPO, capture_output=True, text=True)


def workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def test_actionlint_finds_nothing_in_the_workflows(actionlint):
    files = sorted(WORKFLOWS.glob("*.y*ml"))
    assert {f.name for f in files} >= {"ci.yml", "release.yml"}
    linted = lint(actionlint, *files)
    assert linted.returncode == 0, f"actionlint found problems:\n{linted.stdout}{linted.stderr}"


def test_actionlint_reports_a_broken_workflow(actionlint, tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  test:\n    runs-on: ubuntu-24.04\n    steps:\n"
                      "      - run: echo ${{ github.no_such_context }}\n      - uses: actions/checkout\n")
    linted = lint(actionlint, broken)
    assert linted.returncode == 1
    assert "no_such_context" in linted.stdout and "actions/checkout" in linted.stdout, linted.stdout


def test_ci_runs_the_test_command_as_root_and_the_e2e_tier_on_kind():
    jobs = workflow("ci.yml")["jobs"]
    runs = [step.get("run", "") for step in jobs["test"]["steps"]]
    assert any(run.startswith("sudo ") and "make test" in run for run in runs), runs
    kind = [step.get("run", "") for step in jobs["e2e-kind"]["steps"]]
    assert any("pytest tests/e2e --cluster=kind" in run for run in kind), kind


def test_the_workflows_go_and_python_match_the_repository():
    for name in ("ci.yml", "release.yml"):
        for job in workflow(name)["jobs"].values():
            for step in job.get("steps", []):
                uses, given = step.get("uses", ""), step.get("with", {})
                if uses.startswith("actions/setup-go@"):
                    assert (REPO / given["go-version-file"]).is_file(), f"{name}: {given['go-version-file']}"
                if uses.startswith("actions/setup-python@"):
                    assert given["python-version"] == "3.11", f"{name}: the image and the lock are 3.11"


def test_the_release_uses_the_helm_that_hack_pins():
    pinned = re.search(r"^require helm\.sh/helm/v3 (v\S+)$", (REPO / "hack" / "helm" / "go.mod").read_text(), re.M)
    assert pinned, "hack/helm/go.mod does not require helm.sh/helm/v3 on one line"
    pinned = pinned.group(1)
    assert workflow("release.yml")["env"]["HELM_VERSION"] == pinned
