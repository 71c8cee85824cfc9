"""The release's steps that call outside tools, each run here on its own as release.yml calls
it: the Python package built and checked as PyPI would, the chart linted and packaged at the
release's version, and the SBOM of the image's pinned dependencies. (Pushing, signing and the
multi-arch image need GitHub and a registry; actionlint checks those steps.)"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from tokenwarden import devcluster

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
RELEASE = yaml.safe_load((REPO / ".github" / "workflows" / "release.yml").read_text())


def release_step(job: str, name: str) -> str:
    return next(s["run"] for s in RELEASE["jobs"][job]["steps"] if s.get("name") == name)


def run(argv: list, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True)


def locked_packages() -> dict[str, tuple[str, set[str]]]:
    """requirements.lock's packages: name -> (version, its sha256 hashes)."""
    packages: dict[str, tuple[str, set[str]]] = {}
    for entry in re.split(r"\n(?=[a-z0-9])", (REPO / "requirements.lock").read_text()):
        pin = re.match(r"([a-z0-9._-]+)==(\S+)", entry)
        if pin:
            packages[pin.group(1)] = (pin.group(2), set(re.findall(r"--hash=sha256:([0-9a-f]{64})", entry)))
    return packages


def test_the_python_package_builds_and_passes_twine_check(tmp_path):
    # From a copy, so that the checkout gets no build/ or egg-info; without isolation, so that
    # nothing is downloaded (the workflow builds isolated, from the same build-system table).
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "operator", source / "operator", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    built = run([sys.executable, "-m", "build", "--no-isolation", "--outdir", tmp_path / "dist"], source)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    # Python's warnings (setuptools' deprecations among them), not distutils' "warning: byte-compiling
    # is disabled" that a build prints where bytecode is not written.
    assert not re.search(r"Warning\b|deprecat", built.stdout + built.stderr), built.stdout + built.stderr
    wheel = tmp_path / "dist" / f"tokenwarden-{VERSION}-py3-none-any.whl"
    sdist = tmp_path / "dist" / f"tokenwarden-{VERSION}.tar.gz"
    assert wheel.is_file() and sdist.is_file(), sorted(p.name for p in (tmp_path / "dist").iterdir())
    checked = run([sys.executable, "-m", "twine", "check", "--strict", wheel, sdist], tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    names = zipfile.ZipFile(wheel).namelist()
    assert f"tokenwarden-{VERSION}.dist-info/licenses/LICENSE" in names
    assert "tokenwarden/py.typed" in names and "tokenwarden/cli/__init__.py" in names
    with tarfile.open(sdist) as archive:
        assert f"tokenwarden-{VERSION}/LICENSE" in archive.getnames()


def test_the_chart_lints_and_packages_at_the_release_version(tmp_path):
    helm = devcluster.ensure_helm(log=lambda *_: None)
    script = release_step("chart", "helm lint and package")
    assert "--destination dist" in script
    # The workflow packages into dist/ of its checkout; here into a folder of the test's own.
    script = script.replace("helm ", f"{helm} ").replace("--destination dist", f"--destination {tmp_path}")
    packaged = subprocess.run(["bash", "-e", "-c", script], cwd=REPO, capture_output=True, text=True,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "VERSION": "9.8.7"})
    assert packaged.returncode == 0, packaged.stdout + packaged.stderr
    with tarfile.open(tmp_path / "tokenwarden-9.8.7.tgz") as chart:
        meta = yaml.safe_load(chart.extractfile("tokenwarden/Chart.yaml"))
        assert {"tokenwarden/values.schema.json", "tokenwarden/templates/NOTES.txt"} <= set(chart.getnames())
    assert meta["version"] == "9.8.7" and meta["appVersion"] == "9.8.7"


def test_the_sbom_names_every_locked_dependency_with_its_hashes(tmp_path):
    script = "\n".join(line for line in release_step("image", "SBOM (CycloneDX) of the image's dependencies").splitlines()
                       if "pip install" not in line)
    made = subprocess.run(["bash", "-e", "-c", script.replace("tokenwarden.cdx.json", str(tmp_path / "sbom.json"))],
                          cwd=REPO, capture_output=True, text=True, env={"PATH": f"{BIN}:/usr/bin:/bin"})
    assert made.returncode == 0, made.stdout + made.stderr
    sbom = json.loads((tmp_path / "sbom.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    root = sbom["metadata"]["component"]
    assert (root["name"], root["version"]) == ("tokenwarden", VERSION)
    assert [entry["license"]["id"] for entry in root["licenses"]] == ["Apache-2.0"]
    locked = locked_packages()
    components = {c["name"].lower(): c for c in sbom["components"]}
    assert set(components) == set(locked)
    for name, (version, hashes) in locked.items():
        component = components[name]
        assert component["version"] == version and component["purl"] == f"pkg:pypi/{name}@{version}"
        listed = {h["content"] for ref in component["externalReferences"] for h in ref.get("hashes", [])}
        assert listed == hashes, name
    # Reproducible: the same lock gives the same document.
    again = subprocess.run(["bash", "-e", "-c", script.replace("tokenwarden.cdx.json", str(tmp_path / "again.json"))],
                           cwd=REPO, capture_output=True, text=True, env={"PATH": f"{BIN}:/usr/bin:/bin"})
    assert again.returncode == 0 and (tmp_path / "again.json").read_text() == (tmp_path / "sbom.json").read_text()
