"""Container images built without Docker: the product image (the repository's Dockerfile),
a local Debian base for it, and the pause image for the local node's pod sandboxes.

buildah builds them with chroot isolation and the host's network for RUN steps (pip
needs PyPI), in root's default storage (/var/lib/containers/storage), so every later
command and user shares them. The local node's containerd cannot read that storage: it
imports docker-archive tars that :func:`image_archive` exports into the cache
(``ctr -n k8s.io images import``).

Builds are reproducible as far as their inputs are: dependencies come from the hashed
``requirements.lock``, and files and creation times in every image are set to the time
of the checkout's last commit, so the same commit and base give the same image id.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections import deque
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tokenwarden.devcluster._build import _go, _go_version, cache_root, hack_dir
from tokenwarden.devcluster._errors import ControlPlaneError

DEFAULT_TAG = "tokenwarden:dev"
BASE_IMAGE = "localhost/tokenwarden-base:bookworm"
PAUSE_IMAGE = "localhost/tokenwarden/pause:1.0"
BASES = ("default", "local")
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
STORAGE_DRIVER_ENV = "TOKENWARDEN_STORAGE_DRIVER"
RECIPE_LABEL = "io.tokenwarden.recipe"
APT_DIR = Path("/etc/apt")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

# What mmdebstrap makes of the base: the smallest Debian (minbase) with Debian's python3;
# merged /usr set up the way debootstrap does it, not by the usrmerge package (which
# brings perl); no manuals, documentation (but copyrights) or translations.
_MMDEBSTRAP_OPTIONS = (
    "--variant=minbase",
    "--include=" + ",".join(BASE_PACKAGES),
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--format=tar",
)
_BASE_CONFIG = (
    "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "--env", "LANG=C.UTF-8",
    "--cmd", '["/usr/bin/python3"]',
)
_PAUSE_LDFLAGS = "-s -w -buildid="
_FALLBACK_EPOCH = 1700000000  # when the checkout has no git history to take a time from
_TOOL_PACKAGES = {"buildah": "buildah", "mmdebstrap": "mmdebstrap"}
_apt_updated = False


@dataclass(frozen=True)
class Image:
    """An image in buildah's storage."""
    name: str             # as stored, with its registry: localhost/tokenwarden:dev
    id: str               # the full image id (sha256 of its config)
    size_mb: float        # as ``buildah images`` reports it (1 MB = 10^6 bytes)
    labels: dict


# -- tools ---------------------------------------------------------------------------

def ensure_tools(*tools: str, log=print) -> None:
    """Install buildah and mmdebstrap with apt-get when they are missing and we are root."""
    global _apt_updated
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not missing:
        return
    packages = [_TOOL_PACKAGES.get(tool, tool) for tool in missing]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ControlPlaneError(f"{missing[0]} not found: apt-get install {' '.join(packages)} "
                                "(as root; images are built with buildah, without Docker)")
    log(f"{' and '.join(missing)} not found: installing {' '.join(packages)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [["apt-get", "install", "-y", "-qq", *packages]]
    if not _apt_updated:
        steps.insert(0, ["apt-get", "update", "-qq"])
    for argv in steps:
        result = subprocess.run(argv, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise ControlPlaneError(f"{' '.join(argv)} failed: install {' '.join(packages)} by hand\n"
                                    f"{result.stderr.strip()[-2000:]}")
        _apt_updated = _apt_updated or argv[1] == "update"
    still = [tool for tool in missing if shutil.which(tool) is None]
    if still:
        raise ControlPlaneError(f"{still[0]} still not found after apt-get install: check PATH")


@cache
def storage_driver() -> str:
    """The storage driver buildah uses here: overlay when it works, else vfs
    (``TOKENWARDEN_STORAGE_DRIVER`` forces one). A store already made with one driver
    refuses the other, so the first that answers is the one in use."""
    if shutil.which("buildah") is None:
        raise ControlPlaneError("buildah not found: apt-get install buildah")
    forced = os.environ.get(STORAGE_DRIVER_ENV)
    problems = []
    for driver in (forced,) if forced else ("overlay", "vfs"):
        result = subprocess.run(["buildah", "--storage-driver", driver, "images", "--quiet"],
                                capture_output=True, text=True)
        if result.returncode == 0:
            return driver
        problems.append(f"{driver}: {_tail(result.stderr, 2)}")
    raise ControlPlaneError("buildah cannot open its storage (/var/lib/containers/storage) with "
                            f"{' or '.join(p.split(':')[0] for p in problems)}: fix "
                            f"/etc/containers/storage.conf or set {STORAGE_DRIVER_ENV}\n" + "\n".join(problems))


def _buildah(*args: str, what: str) -> str:
    argv = ["buildah", "--storage-driver", storage_driver(), *args]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise ControlPlaneError(f"{what} failed (buildah {args[0]}):\n{_tail(result.stderr or result.stdout)}")
    return result.stdout


_STEP = re.compile(r"(\[\d+/\d+\] )?STEP \d|--> Using cache")


def _stream(argv: list[str], what: str, log, hint=None) -> None:
    """Run ``argv``, log its STEP lines as they come, and keep its last lines for an error."""
    last: deque[str] = deque(maxlen=30)
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        for line in process.stdout:
            line = line.rstrip()
            last.append(line)
            if _STEP.match(line):
                log(f"  {line}")
    if process.returncode != 0:
        output = "\n".join(last)
        raise ControlPlaneError(f"{(hint and hint(output)) or what + ' failed'}:\n{output}")


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _epoch() -> int:
    """SOURCE_DATE_EPOCH for builds: the time of the checkout's last commit."""
    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        return int(os.environ["SOURCE_DATE_EPOCH"])
    result = subprocess.run(["git", "-C", str(hack_dir().parent), "log", "-1", "--format=%ct"],
                            capture_output=True, text=True)
    stamp = result.stdout.strip()
    return int(stamp) if result.returncode == 0 and stamp.isdigit() else _FALLBACK_EPOCH


# -- images in buildah's storage -----------------------------------------------------

def image(name: str) -> Image | None:
    """The image ``name`` (or id) in buildah's storage, or None."""
    result = subprocess.run(["buildah", "--storage-driver", storage_driver(), "inspect", "--type", "image", name],
                            capture_output=True, text=True)
    if result.returncode != 0:
        return None
    inspected = json.loads(result.stdout)
    image_id = inspected["FromImageID"]
    listed = json.loads(_buildah("images", "--json", image_id, what=f"listing image {name}") or "[]")
    names = [n for entry in listed for n in entry.get("names") or []]
    stored = next((n for n in names if n == name or n.endswith("/" + name)), names[0] if names else name)
    size = listed[0]["size"] if listed else "0 B"
    return Image(name=stored, id=image_id, size_mb=_megabytes(size),
                 labels=dict(inspected["OCIv1"].get("config", {}).get("Labels") or {}))


def _megabytes(size: str) -> float:
    """``buildah images``' human size (decimal units: 1.61 MB, 163 MB, 1.2 GB) in MB."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([kKMGT]?B)\s*", size)
    if not match:
        return 0.0
    scale = {"B": 1e-6, "kB": 1e-3, "KB": 1e-3, "MB": 1, "GB": 1e3, "TB": 1e6}[match.group(2)]
    return float(match.group(1)) * scale


def _recipe(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _commit_scratch(name: str, add: tuple[str, ...], config: tuple[str, ...], recipe: str, what: str,
                    timestamp: int) -> None:
    """``buildah from scratch``, ``add`` (``buildah add`` arguments: a source, maybe options
    before it), configure, commit as ``name``; the working container goes either way."""
    container = _buildah("from", "scratch", what=what).strip()
    try:
        _buildah("add", *add[:-1], container, add[-1], "/", what=what)
        _buildah("config", *config, "--label", f"{RECIPE_LABEL}={recipe}", container, what=what)
        _buildah("commit", "--quiet", "--rm", "--timestamp", str(timestamp), container, name, what=what)
    except BaseException:
        subprocess.run(["buildah", "--storage-driver", storage_driver(), "rm", container], capture_output=True)
        raise


# -- the local base ------------------------------------------------------------------

def debian_sources(apt_dir: Path = APT_DIR) -> list[str]:
    """The host's Debian mirrors for bookworm (and its -updates and -security suites) as
    mmdebstrap's source lines, read from sources.list, sources.list.d/*.list and *.sources."""
    entries: list[tuple[str, str, list[str]]] = []
    one_line = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in (p for p in one_line if p.is_file()):
        for line in path.read_text().splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) < 4 or words[0] != "deb":
                continue
            if words[1].startswith("["):
                while words and not words[0].endswith("]"):
                    words.pop(0)
                words = ["deb", *words[1:]]
            if len(words) >= 4:
                entries.append((words[1], words[2], words[3:]))
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for stanza in _deb822(path.read_text()):
            if "deb" not in stanza.get("types", "").split() or stanza.get("enabled", "yes").lower() == "no":
                continue
            for uri in stanza.get("uris", "").split():
                for suite in stanza.get("suites", "").split():
                    entries.append((uri, suite, stanza.get("components", "").split()))
    wanted = (SUITE, f"{SUITE}-updates", f"{SUITE}-security")
    lines = [f"deb {uri} {suite} main" for uri, suite, components in entries
             if suite in wanted and "main" in components]
    lines = list(dict.fromkeys(lines))
    if not any(line.split()[2] == SUITE for line in lines):
        raise ControlPlaneError(f"no Debian {SUITE} mirror (suite {SUITE}, component main) in "
                                f"{apt_dir}/sources.list or {apt_dir}/sources.list.d: add the mirror "
                                "you use to the host's apt sources, e.g. "
                                f"'deb http://deb.debian.org/debian {SUITE} main'")
    return lines


def _deb822(text: str) -> list[dict[str, str]]:
    stanzas, current, key = [], {}, None
    for line in text.splitlines() + [""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
        elif line[0].isspace() and key:
            current[key] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            current[key] = value.strip()
    return stanzas


def ensure_base_image(log=print) -> str:
    """``localhost/tokenwarden-base:bookworm``: Debian bookworm (minbase) with Debian's
    python3, python3-venv and ca-certificates, made once with mmdebstrap from the host's
    Debian mirror and imported into buildah's storage; reused while it is there."""
    ensure_tools("buildah", log=log)
    recipe = _recipe(SUITE, *_MMDEBSTRAP_OPTIONS, *_BASE_CONFIG)
    existing = image(BASE_IMAGE)
    if existing is not None and existing.labels.get(RECIPE_LABEL) == recipe:
        return BASE_IMAGE
    ensure_tools("mmdebstrap", log=log)
    sources = debian_sources()
    log(f"making the base image {BASE_IMAGE} with mmdebstrap from {', '.join(sorted({s.split()[1] for s in sources}))} "
        "(once; about a minute)")
    folder = cache_root() / "base"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        tarball = Path(scratch) / f"debian-{SUITE}.tar"
        argv = ["mmdebstrap", *_MMDEBSTRAP_OPTIONS, SUITE, str(tarball), *sources]
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(_epoch())}
        result = subprocess.run(argv, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise ControlPlaneError(f"mmdebstrap could not make the Debian {SUITE} base from "
                                    f"{sources[0].split()[1]}: check access to that mirror\n{_tail(result.stderr)}")
        _commit_scratch(BASE_IMAGE, (str(tarball),), _BASE_CONFIG, recipe, "importing the base image",
                        int(env["SOURCE_DATE_EPOCH"]))
    log(f"base image {BASE_IMAGE} ready")
    return BASE_IMAGE


# -- the product image ---------------------------------------------------------------

def build_image(tag: str = DEFAULT_TAG, log=print, base: str = "local", no_cache: bool = False) -> Image:
    """Build the repository's Dockerfile as ``tag`` with buildah and export it for the local
    node (:func:`image_archive`). ``base``: "local" builds on :func:`ensure_base_image`,
    "default" on the Dockerfile's own BASE_IMAGE (the public python image, pulled).
    Unchanged steps come from buildah's layer cache unless ``no_cache``."""
    if base not in BASES:
        raise ControlPlaneError(f"unknown base {base!r}: use one of {', '.join(BASES)}")
    ensure_tools("buildah", log=log)
    root = hack_dir().parent
    for needed in ("Dockerfile", "requirements.lock"):
        if not (root / needed).is_file():
            raise ControlPlaneError(f"{root / needed} is missing: run from a tokenwarden checkout"
                                    + (" (make lock writes it)" if needed.endswith(".lock") else ""))
    epoch = _epoch()
    argv = ["buildah", "--storage-driver", storage_driver(), "build",
            "--isolation", "chroot", "--network", "host", "--layers", "--force-rm",
            "--timestamp", str(epoch), "--build-arg", f"SOURCE_DATE_EPOCH={epoch}",
            "--file", str(root / "Dockerfile"), "--tag", tag]
    if no_cache:
        argv.append("--no-cache")
    if base == "local":
        argv += ["--build-arg", f"BASE_IMAGE={ensure_base_image(log)}"]
    if HOST_CA_BUNDLE.is_file():
        # RUN steps trust what the host trusts (an HTTPS proxy's CA on the way to PyPI too):
        # the host's bundle is mounted over the base's, which Debian's pip reads, and is
        # never committed into a layer.
        argv += ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
    argv.append(str(root))

    def hint(output: str) -> str | None:
        lowered = output.lower()
        if base == "default" and any(w in lowered for w in ("pinging container registry", "initializing source",
                                                              "dial tcp", "no such host", "short-name")):
            return ("the public base image cannot be pulled here (no registry reachable): "
                    "build with --base local (make image IMAGE_BASE=local)")
        if "pip" in lowered and any(w in lowered for w in ("hashes", "hash mismatch", "no matching distribution",
                                                           "resolutionimpossible")):
            return "pip could not install from requirements.lock: run make lock after changing dependencies"
        return None

    log(f"building {tag} from {root / 'Dockerfile'} on the {base} base with buildah "
        f"({storage_driver()} storage)")
    _stream(argv, f"building {tag}", log, hint)
    built = image(tag)
    if built is None:
        raise ControlPlaneError(f"buildah reported success but {tag} is not in its storage")
    # buildah files an unqualified tag under localhost/; a pod's `image: tokenwarden:dev`
    # means docker.io/library/tokenwarden:dev. Tag it so too, so that name works on the node.
    reference = pod_reference(tag)
    if reference != built.name:
        _buildah("tag", built.id, reference, what=f"tagging {tag} as {reference}")
    image_archive(reference)
    return built


def pod_reference(name: str) -> str:
    """The fully qualified name a kubelet and containerd give the image ``name``
    (``tokenwarden:dev`` -> ``docker.io/library/tokenwarden:dev``)."""
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name}" if rest else f"docker.io/library/{name}"


# -- the pause image -----------------------------------------------------------------

def ensure_pause_image(log=print) -> str:
    """``localhost/tokenwarden/pause:1.0``: hack/pause built static (CGO_ENABLED=0) into an
    image with only that binary; rebuilt when its source or the Go version changes.
    Returns its name."""
    ensure_tools("buildah", log=log)
    source = hack_dir() / "pause"
    go = _go()
    files = sorted(p for p in source.iterdir() if p.suffix in (".go", ".mod") and not p.name.endswith("_test.go"))
    recipe = _recipe(_go_version(go), _PAUSE_LDFLAGS, *(f"{p.name}\0" for p in files),
                     *(p.read_bytes() for p in files))
    existing = image(PAUSE_IMAGE)
    if existing is not None and existing.labels.get(RECIPE_LABEL) == recipe:
        return PAUSE_IMAGE
    log(f"building the pause image {PAUSE_IMAGE} from {source}")
    folder = cache_root() / "pause" / recipe
    folder.mkdir(parents=True, exist_ok=True)
    binary = folder / "pause"
    env = {**os.environ, "CGO_ENABLED": "0", "GOOS": "linux", "GOTOOLCHAIN": "local"}
    result = subprocess.run([go, "build", "-trimpath", "-ldflags", _PAUSE_LDFLAGS, "-o", str(binary), "."],
                            cwd=source, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise ControlPlaneError(f"go build failed in {source}: fix the pause program\n{_tail(result.stderr)}")
    _commit_scratch(PAUSE_IMAGE, ("--chmod", "0755", str(binary)),
                    ("--entrypoint", '["/pause"]', "--user", "65535:65535"), recipe, "making the pause image",
                    timestamp=0)  # the binary is reproducible: so is the image, whatever the commit
    return PAUSE_IMAGE


# -- export for containerd -----------------------------------------------------------

def image_archive(name: str) -> Path:
    """A docker-archive tar of the image ``name`` under the cache (``images/``), for
    ``ctr -n k8s.io images import``; exported again only when the image id changed.
    Safe to call from several processes at once: one exports, the others wait for it."""
    found = image(name)
    if found is None:
        raise ControlPlaneError(f"image {name} is not in buildah's storage: build it first "
                                "(tokenwarden-dev build-image, or make image)")
    folder = cache_root() / "images"
    folder.mkdir(parents=True, exist_ok=True)
    reference = pod_reference(name)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", reference)
    archive, stamp = folder / f"{stem}.tar", folder / f"{stem}.id"
    with open(folder / f".{stem}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if archive.is_file() and stamp.is_file() and stamp.read_text().strip() == found.id:
            return archive
        partial = folder / f".{stem}.{os.getpid()}.partial"
        partial.unlink(missing_ok=True)
        stamp.unlink(missing_ok=True)
        try:
            _buildah("push", "--quiet", found.id, f"docker-archive:{partial}:{reference}",
                     what=f"exporting {name}")
            os.replace(partial, archive)
        finally:
            partial.unlink(missing_ok=True)
        stamp.write_text(found.id + "\n")
    return archive
