"""The GitHub workflows in .github/workflows cannot run here, so they are checked here:
actionlint (built from the Go module pinned in hack/actionlint, cached like helm) finds
nothing in them, and what they take from the repository matches it."""
from __future__ import annotations

import re
import subprocess
import tomllib
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
    for name in ("ci.yml", "release.yml", "docs.yml"):
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


def step(workflow_name: str, job: str, name: str) -> str:
    """The shell script of one step, found by its id or name."""
    steps = workflow(workflow_name)["jobs"][job]["steps"]
    return next(s["run"] for s in steps if name in (s.get("id"), s.get("name")))


@pytest.fixture
def release_tree(tmp_path) -> Path:
    """The files the release reads, copied, with a changelog that has a 0.1.0 section."""
    (tmp_path / "charts" / "tokenwarden").mkdir(parents=True)
    for name in ("pyproject.toml", "charts/tokenwarden/Chart.yaml"):
        (tmp_path / name).write_text((REPO / name).read_text())
    changelog = (REPO / "CHANGELOG.md").read_text().replace(
        "\n[Unreleased]: ", "\n## [0.1.0] - 2027-01-04\n\n### Added\n\n- The first release.\n\n"
        "[0.1.0]: https://github.com/tokenwarden/tokenwarden/releases/tag/v0.1.0\n[Unreleased]: ", 1)
    (tmp_path / "CHANGELOG.md").write_text(changelog)
    return tmp_path


def run_step(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    outputs = cwd / "github-output"
    outputs.touch()
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "GITHUB_OUTPUT": str(outputs), **env})


def test_the_release_takes_a_tag_that_matches_the_package_the_chart_and_the_changelog(release_tree):
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert version == "0.1.0", "the fixture's changelog section is for 0.1.0"
    checked = run_step(step("release.yml", "version", "version"), release_tree, TAG="v0.1.0")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (release_tree / "github-output").read_text() == "version=0.1.0\n"


@pytest.mark.parametrize("tag, problem", [("v0.2.0", "does not match pyproject (0.1.0)"),
                                          ("v0.1.0", "CHANGELOG.md has no section [0.1.0]")])
def test_the_release_refuses_a_tag_the_repository_does_not_match(release_tree, tag, problem):
    if "CHANGELOG" in problem:
        (release_tree / "CHANGELOG.md").write_text((REPO / "CHANGELOG.md").read_text())
    checked = run_step(step("release.yml", "version", "version"), release_tree, TAG=tag)
    assert checked.returncode == 1
    assert problem in checked.stdout, checked.stdout + checked.stderr
    assert (release_tree / "github-output").read_text() == ""


def test_the_github_release_notes_are_the_changelogs_section(release_tree):
    # gh is replaced by a script that records what it was asked to do.
    bin_dir = release_tree / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text('#!/bin/sh\nprintf "%s\\n" "$@" > gh-args\n')
    (bin_dir / "gh").chmod(0o755)
    (release_tree / "artifacts").mkdir()
    (release_tree / "artifacts" / "tokenwarden.cdx.json").write_text("{}")
    made = subprocess.run(["bash", "-e", "-c", step("release.yml", "github-release", "gh release create")],
                          cwd=release_tree, capture_output=True, text=True,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "TAG": "v0.1.0", "VERSION": "0.1.0"})
    assert made.returncode == 0, made.stderr
    assert (release_tree / "notes.md").read_text().strip() == "### Added\n\n- The first release."
    args = (release_tree / "gh-args").read_text().splitlines()
    assert args[:3] == ["release", "create", "v0.1.0"] and "artifacts/tokenwarden.cdx.json" in args


def test_the_chart_installs_the_image_the_release_pushes():
    # On the project's own repository (owner tokenwarden) the release pushes the chart's default
    # image, tagged with the version the chart's appVersion names (the version job holds them equal).
    env = workflow("release.yml")["env"]
    owner = "${{ github.repository_owner }}"
    values = yaml.safe_load((REPO / "charts" / "tokenwarden" / "values.yaml").read_text())
    assert env["IMAGE"].replace(owner, "tokenwarden") == values["image"]["repository"]
    assert values["image"]["tag"] == "", "the image tag defaults to the chart's appVersion"
    charts = env["CHARTS"].replace(owner, "tokenwarden").removeprefix("oci://")
    security = (REPO / "SECURITY.md").read_text()
    assert f"cosign verify {values['image']['repository']}:" in security
    assert f"cosign verify {charts}/tokenwarden:" in security


def test_the_docs_site_is_built_strict_and_published_where_the_runbook_links_point():
    """The alerts' runbook links point at mkdocs.yml's site_url; the docs workflow builds the
    site with --strict and deploys it to GitHub Pages, which serves it there."""
    jobs = workflow("docs.yml")["jobs"]
    runs = [step.get("run", "") for step in jobs["build"]["steps"]]
    assert any("mkdocs build --strict" in run for run in runs), runs
    assert [step["uses"].split("@")[0] for step in jobs["deploy"]["steps"]] == ["actions/deploy-pages"]
    site_url = next(line.split(":", 1)[1].strip() for line in (REPO / "mkdocs.yml").read_text().splitlines()
                    if line.startswith("site_url:"))
    assert site_url.startswith("https://") and site_url.endswith(".github.io/tokenwarden/")
