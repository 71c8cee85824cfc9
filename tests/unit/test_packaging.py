"""The Python package's metadata as PyPI and pip will read it: the licence as an SPDX
expression with its file, links and classifiers PyPI accepts, built with no warning."""
from __future__ import annotations

import email
import importlib.metadata
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from trove_classifiers import classifiers as known_classifiers

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# The first setuptools that reads `license` as an SPDX string and `license-files` (PEP 639).
SPDX_SETUPTOOLS = Version("77")


@pytest.fixture(scope="module")
def metadata(tmp_path_factory) -> tuple[email.message.Message, str]:
    """The wheel metadata setuptools prepares from a copy of the project (the checkout gets no
    egg-info), and what the build printed."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "operator", source / "operator",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("metadata")
    built = subprocess.run(
        [sys.executable, "-W", "default", "-c",
         "import sys; from setuptools import build_meta; print(build_meta.prepare_metadata_for_build_wheel(sys.argv[1]))",
         str(out)], cwd=source, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    dist_info = out / built.stdout.strip().splitlines()[-1]
    return email.message_from_bytes((dist_info / "METADATA").read_bytes()), built.stderr + built.stdout


def test_the_build_requires_a_setuptools_that_reads_spdx_licences():
    setuptools = next(Requirement(r) for r in PYPROJECT["build-system"]["requires"]
                      if Requirement(r).name == "setuptools")
    assert not setuptools.specifier.contains(str(Version("76.9"))), (
        f"build-system requires {setuptools}: raise it to setuptools>={SPDX_SETUPTOOLS}, the first that "
        "reads project.license as an SPDX string")
    assert setuptools.specifier.contains(str(SPDX_SETUPTOOLS))


def test_the_licence_is_an_spdx_expression_with_its_file(metadata):
    meta, _ = metadata
    assert meta["Metadata-Version"] >= "2.4"
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["License"] is None, "the legacy License field is gone with the SPDX expression"
    assert not [c for c in meta.get_all("Classifier") if c.startswith("License ::")], (
        "a License :: classifier beside an SPDX expression is refused by setuptools and PyPI")


def test_the_metadata_builds_with_no_warning(metadata):
    _, printed = metadata
    assert "Warning" not in printed and "deprecated" not in printed.lower(), printed


def test_links_and_classifiers_are_ones_pypi_accepts(metadata):
    meta, _ = metadata
    urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL"))
    assert {"Homepage", "Source", "Changelog", "Issues", "Documentation"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    classifiers = meta.get_all("Classifier")
    assert classifiers and not set(classifiers) - known_classifiers, (
        f"not PyPI classifiers: {sorted(set(classifiers) - known_classifiers)}")
    oldest = PYPROJECT["project"]["requires-python"].removeprefix(">=")
    assert f"Programming Language :: Python :: {oldest}" in classifiers


def test_kopf_is_bounded_to_the_versions_whose_private_parts_are_wrapped():
    """While a module wraps kopf's private functions, kopf is bounded above: a kopf release may
    move them, and only the versions tested here (test_listings) are allowed."""
    wrapping = sorted(path.name for path in (REPO / "operator" / "tokenwarden").rglob("*.py")
                      if "from kopf._" in path.read_text() or "import kopf._" in path.read_text())
    kopf = next(Requirement(r) for r in PYPROJECT["project"]["dependencies"] if Requirement(r).name == "kopf")
    installed = Version(importlib.metadata.version("kopf"))
    assert installed in kopf.specifier, f"kopf {installed} is outside {kopf.specifier}"
    if wrapping:
        assert any(spec.operator == "<" for spec in kopf.specifier), (
            f"{', '.join(wrapping)} wrap kopf's private functions: bound kopf above in pyproject.toml")
