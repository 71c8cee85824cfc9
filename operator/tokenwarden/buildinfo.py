"""``tokenwarden_build_info``: which build a process runs, as a gauge of 1 whose labels say it.

Both processes export it, so a query can tell which versions run where during a rollout,
join other series on it, and notice when a process stops reporting at all (an absent
``tokenwarden_build_info{component="authenticator"}``).
"""
from __future__ import annotations

import platform
from importlib import metadata

from prometheus_client import Gauge

import tokenwarden

#: Distributions whose versions the labels carry: what decides how the process behaves.
LIBRARIES = ("kopf", "kubernetes", "aiohttp")


BUILD_INFO = Gauge("tokenwarden_build_info", "1, labelled with the build that runs: tokenwarden's version, "
                   "Python's and the libraries'; component is operator or authenticator.",
                   ["component", "version", "python", *LIBRARIES])


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return ""


def build_labels(component: str) -> dict[str, str]:
    return {"component": component, "version": tokenwarden.__version__, "python": platform.python_version(),
            **{library: _version(library) for library in LIBRARIES}}


def export_build_info(component: str) -> None:
    """Set ``tokenwarden_build_info{component, version, python, kopf, kubernetes, aiohttp}`` to 1."""
    BUILD_INFO.labels(**build_labels(component)).set(1)
