"""tokenwarden_build_info: 1, labelled with the build."""
from __future__ import annotations

import platform
from importlib import metadata

from prometheus_client import REGISTRY

import tokenwarden
from tokenwarden.buildinfo import export_build_info


def test_build_info_is_one_labelled_with_the_versions_that_run():
    export_build_info("authenticator")
    export_build_info("authenticator")  # a second start in one process changes nothing
    labels = {"component": "authenticator", "version": tokenwarden.__version__,
              "python": platform.python_version(), "kopf": metadata.version("kopf"),
              "kubernetes": metadata.version("kubernetes"), "aiohttp": metadata.version("aiohttp")}
    assert REGISTRY.get_sample_value("tokenwarden_build_info", labels) == 1
