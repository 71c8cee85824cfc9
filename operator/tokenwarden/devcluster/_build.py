"""Build etcd, kube-apiserver and kube-controller-manager from the Go modules in hack/.

The binaries are cached outside the repository under a key made of the pinned
module files and the Go version, so a second run reuses them and a changed pin
rebuilds them.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tokenwarden.devcluster._errors import ControlPlaneError

HACK_ENV = "TOKENWARDEN_HACK_DIR"
CACHE_ENV = "TOKENWARDEN_CACHE_DIR"


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kubernetes_version: str

    @property
    def directory(self) -> Path:
        return self.kube_apiserver.parent


def hack_dir() -> Path:
    """The repository's ``hack/`` folder, which holds the pinned Go modules."""
    if os.environ.get(HACK_ENV):
        return Path(os.environ[HACK_ENV])
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "hack" / "controlplane" / "go.mod").is_file():
            return parent / "hack"
    raise ControlPlaneError(
        "cannot find hack/controlplane/go.mod: run from a tokenwarden checkout "
        f"or set {HACK_ENV} to its hack/ folder"
    )


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "tokenwarden"


def pinned_version(go_mod: Path, module: str) -> str:
    """The version ``go_mod`` requires of ``module``."""
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", go_mod.read_text(), re.M)
    if not match:
        raise ControlPlaneError(f"{go_mod} does not require {module}")
    return match.group(1)


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise ControlPlaneError(
            "no Go toolchain on PATH: install Go 1.26 or newer (the control plane is built from Go modules)"
        )
    return go


def _go_version(go: str) -> str:
    return subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout.strip()


def _cache_key(hack: Path, go_version: str, modules: tuple[str, ...] = ("controlplane", "etcd")) -> str:
    digest = hashlib.sha256(go_version.encode())
    for module in modules:
        for name in (f"{module}/go.mod", f"{module}/go.sum"):
            digest.update(name.encode())
            digest.update((hack / name).read_bytes())
    return digest.hexdigest()[:16]


def _version_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = {
        "k8s.io/component-base/version.gitVersion": version,
        "k8s.io/component-base/version.gitMajor": major,
        "k8s.io/component-base/version.gitMinor": minor,
        "k8s.io/component-base/version.gitTreeState": "clean",
        "k8s.io/client-go/pkg/version.gitVersion": version,
        "k8s.io/client-go/pkg/version.gitMajor": major,
        "k8s.io/client-go/pkg/version.gitMinor": minor,
    }
    return "-s -w " + " ".join(f"-X {name}={value}" for name, value in flags.items())


def _go_build(go: str, module_dir: Path, output: str, packages: list[str], ldflags: str, tags: str = "") -> None:
    """``go build`` into ``output``: a folder (ending in a separator) or one file."""
    cmd = [go, "build", "-trimpath", "-o", output, "-ldflags", ldflags, *(["-tags", tags] if tags else []), *packages]
    result = subprocess.run(cmd, cwd=module_dir, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        hint = (
            "a Go module download failed: check access to the Go module proxy (GOPROXY) and retry"
            if "dial tcp" in result.stderr or "proxy" in result.stderr.lower()
            else "the Go build failed"
        )
        raise ControlPlaneError(f"{hint} in {module_dir}:\n{tail}")


def ensure_binaries(log=print) -> Binaries:
    """Return cached control-plane binaries, building them first when the pin changed."""
    hack = hack_dir()
    go = _go()
    version = pinned_version(hack / "controlplane" / "go.mod", "k8s.io/kubernetes")
    target = cache_root() / "controlplane" / f"{version}-{_cache_key(hack, _go_version(go))}"
    binaries = Binaries(
        etcd=target / "etcd",
        kube_apiserver=target / "kube-apiserver",
        kube_controller_manager=target / "kube-controller-manager",
        kubernetes_version=version,
    )
    def build(staging: Path) -> None:
        _go_build(go, hack / "controlplane", str(staging) + os.sep,
                  ["k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-controller-manager"],
                  _version_ldflags(version))
        _go_build(go, hack / "etcd", str(staging / "etcd"), ["go.etcd.io/etcd/server/v3"], "-s -w")

    _cached_build(target, version, f"kube-apiserver, kube-controller-manager {version} and etcd", build, log)
    return binaries


def _cached_build(target: Path, version: str, what: str, build, log) -> None:
    """Run ``build(staging)`` once per cache key; a half-finished build never counts as done.

    Builds of one key are serialised by a lock file beside it: two checkouts (or two ``make``
    runs) building at once would otherwise share, and wipe, one staging folder. The second
    waits, then finds the first one's build complete."""
    if (target / ".complete").is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        if not _try_lock(lock):
            log(f"waiting for another build of {what} ({target})")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".complete").is_file():
            return
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        started = time.monotonic()
        log(f"building {what} (once; cached in {target})")
        build(staging)
        (staging / ".complete").write_text(version + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        log(f"{what} built in {time.monotonic() - started:.0f}s")


def _try_lock(lock) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def ensure_helm(log=print) -> Path:
    """The Helm CLI pinned in hack/helm, built once and cached like the control plane."""
    hack = hack_dir()
    go = _go()
    version = pinned_version(hack / "helm" / "go.mod", "helm.sh/helm/v3")
    # As Helm's own Makefile does: `helm template` and `helm lint` assume the Kubernetes version of
    # the client-go they are built with (without it, v1.20, which the chart's kubeVersion refuses).
    major, minor = pinned_version(hack / "helm" / "go.mod", "k8s.io/client-go").lstrip("v").split(".")[:2]
    kube = f"{int(major) + 1}.{minor}"
    kube_major, kube_minor = kube.split(".")
    ldflags = " ".join(["-s -w", f"-X helm.sh/helm/v3/internal/version.version={version}"] + [
        f"-X helm.sh/helm/v3/pkg/{package}.k8sVersion{part}={value}"
        for package in ("chartutil", "lint/rules") for part, value in (("Major", kube_major), ("Minor", kube_minor))])
    target = cache_root() / "helm" / f"{version}-k8s{kube}-{_cache_key(hack, _go_version(go), ('helm',))}"
    _cached_build(target, version, f"helm {version}", lambda staging: _go_build(
        go, hack / "helm", str(staging / "helm"), ["helm.sh/helm/v3/cmd/helm"], ldflags), log)
    return target / "helm"


def _go_tool(module: str, pin: str, package: str, binary: str, what: str, log, ldflags: str = "-s -w",
             tags: str = "") -> Path:
    """One command built from the module hack/<module>, which pins ``pin``; cached by its pin."""
    hack = hack_dir()
    go = _go()
    version = pinned_version(hack / module / "go.mod", pin)
    target = cache_root() / module / f"{version}-{_cache_key(hack, _go_version(go), (module,))}"
    _cached_build(target, version, f"{what} {version}", lambda staging: _go_build(
        go, hack / module, str(staging / binary), [package], ldflags.format(version=version), tags), log)
    return target / binary


def ensure_promtool(log=print) -> Path:
    """Prometheus' promtool pinned in hack/promtool (for the chart's alert-rule tests), built once
    and cached like the control plane; without service discovery, which rule tests do not use."""
    return _go_tool("promtool", "github.com/prometheus/prometheus", "github.com/prometheus/prometheus/cmd/promtool",
                    "promtool", "promtool", log, "-s -w -X github.com/prometheus/common/version.Version={version}",
                    tags="remove_all_sd")


def ensure_dashboard_check(log=print) -> Path:
    """The dashboard checker in hack/dashboard (Grafana's dashboard schema, as the Go types of
    grafana-foundation-sdk hold it), built once and cached like the control plane."""
    return _go_tool("dashboard", "github.com/grafana/grafana-foundation-sdk/go", ".", "dashboard-check",
                    "the dashboard checker, grafana-foundation-sdk", log)


def ensure_actionlint(log=print) -> Path:
    """actionlint pinned in hack/actionlint (lints .github/workflows, which cannot run here),
    built once and cached like the control plane."""
    return _go_tool("actionlint", "github.com/rhysd/actionlint", "github.com/rhysd/actionlint/cmd/actionlint",
                    "actionlint", "actionlint", log,
                    "-s -w -X github.com/rhysd/actionlint.version={version}")


@dataclass(frozen=True)
class NodeBinaries:
    kubelet: Path
    kube_scheduler: Path
    kube_proxy: Path
    kubectl: Path


def ensure_node_binaries(log=print) -> NodeBinaries:
    """kubelet, kube-scheduler, kube-proxy and kubectl from hack/node, which pins the same
    k8s.io/kubernetes as the control plane; built once and cached like it."""
    hack = hack_dir()
    go = _go()
    version = pinned_version(hack / "node" / "go.mod", "k8s.io/kubernetes")
    control_plane = pinned_version(hack / "controlplane" / "go.mod", "k8s.io/kubernetes")
    if version != control_plane:
        raise ControlPlaneError(
            f"hack/node pins k8s.io/kubernetes {version} but hack/controlplane pins {control_plane}: "
            "pin the same version in both (go get k8s.io/kubernetes@VERSION && go mod tidy in each)"
        )
    target = cache_root() / "node" / f"{version}-{_cache_key(hack, _go_version(go), ('node',))}"
    commands = ("kubelet", "kube-scheduler", "kube-proxy", "kubectl")
    _cached_build(target, version, f"{', '.join(commands)} {version}", lambda staging: _go_build(
        go, hack / "node", str(staging) + os.sep, [f"k8s.io/kubernetes/cmd/{c}" for c in commands],
        _version_ldflags(version)), log)
    return NodeBinaries(kubelet=target / "kubelet", kube_scheduler=target / "kube-scheduler",
                        kube_proxy=target / "kube-proxy", kubectl=target / "kubectl")
