"""The authenticator's reflectors (kube/_reflector.py), counted in its metrics, and whether
their index may be answered from."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from tokenwarden.authn._metrics import RELISTS
from tokenwarden.kube._reflector import Reflector as _Reflector
from tokenwarden.kube._reflector import Store, WatchError, backoff

__all__ = ["Readiness", "Reflector", "Store", "WatchError", "backoff"]


class Reflector(_Reflector):
    """A reflector whose listings are counted in tokenwarden_authenticator_relists_total."""

    log = logging.getLogger("tokenwarden.authenticator")

    def relisted(self, why: str) -> None:
        RELISTS.labels(kind=self.kind, reason=why).inc()


class Readiness:
    """Whether the index may be answered from (:meth:`loaded`: every kind listed once) and
    whether the process should get traffic (:meth:`ready`: loaded, and no kind's watch broken
    for longer than ``broken_after`` seconds)."""

    def __init__(self, reflectors: Iterable[Reflector] = (), broken_after: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.reflectors = list(reflectors)
        self.broken_after = broken_after
        self.clock = clock
        self.waiting_for: set[str] = set()  # other things to load first (the import key)
        self._loaded = False

    def loaded(self) -> bool:
        if self._loaded:  # asked on every request; once loaded, always loaded
            return True
        self._loaded = not self.waiting_for and all(r.synced for r in self.reflectors)
        return self._loaded

    def problems(self) -> list[str]:
        """Why the process is not ready; empty when it is."""
        if not self.loaded():
            return ["starting: the index is not loaded yet"]
        now = self.clock()
        return [f"the watch of {r.kind} has been broken for {now - r.broken_since:.0f}s"
                for r in self.reflectors
                if r.broken_since is not None and now - r.broken_since > self.broken_after]
