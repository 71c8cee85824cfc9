"""The documentation site builds with `mkdocs build --strict`: every page is in the nav, and
every link and anchor between pages leads somewhere. A warning of any kind fails the build."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        capture_output=True, text=True, env=env, check=False)


def test_the_site_builds_strictly_with_no_warning(tmp_path):
    result = _build(REPO / "mkdocs.yml", tmp_path / "site")
    warnings = [line for line in result.stderr.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert result.returncode == 0 and not warnings, (
        "mkdocs build --strict failed: add new pages to mkdocs.yml's nav and fix the links it names:\n"
        + "\n".join(warnings or result.stderr.splitlines()[-20:]))
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "benchmarks" / "index.html").exists()


def test_a_page_missing_from_the_nav_or_a_broken_link_fails_the_build(tmp_path):
    """The check above can fail: a copy of the site with an orphan page holding a dead link."""
    shutil.copy(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    (tmp_path / "docs" / "orphan.md").write_text("# Orphan\n\nSee [nowhere](nowhere.md).\n")
    result = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "orphan.md" in result.stderr and "nowhere.md" in result.stderr
