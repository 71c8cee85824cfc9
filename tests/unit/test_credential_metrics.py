"""Per-credential metrics: what each series shows, when it goes, and the authenticator's bound."""
from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry, generate_latest

from tokenwarden.authn._metrics import CredentialVerifications, IndexSync
from tokenwarden.authn._reflector import Reflector
from tokenwarden.handlers._indexes import Indexes
from tokenwarden.handlers._metrics import CredentialCollector


def token(name: str, uid: str, phase: str = "Active", spec: dict | None = None, **status) -> dict:
    return {"kind": "ServiceToken",
            "metadata": {"name": name, "namespace": "team", "uid": uid, "creationTimestamp": "2030-01-01T00:00:00Z"},
            "spec": spec or {}, "status": {"phase": phase, **status}}


def scrape(collector) -> dict[tuple, float]:
    registry = CollectorRegistry()
    registry.register(collector)
    samples = {}
    for family in registry.collect():
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def key(name: str, credential: str, **extra) -> tuple:
    labels = {"namespace": "team", "kind": "ServiceToken", "name": credential, **extra}
    return name, tuple(sorted(labels.items()))


def test_timestamps_of_active_credentials_and_their_removal():
    indexes = Indexes([])
    collector = CredentialCollector()
    collector.credentials = indexes.credentials
    indexes.observe("ServiceToken", token("a", "u1", spec={"rotation": {"renewBefore": "1d"}},
                                          expiresAt="2030-01-10T00:00:00Z", lastUsedAt="2030-01-02T00:00:00Z"))
    indexes.observe("ServiceToken", token("b", "u2"))  # no expiry, never used
    indexes.observe("ServiceToken", token("c", "u3", phase="Revoked", expiresAt="2030-01-10T00:00:00Z"))
    indexes.observe("ServiceToken", token("d", "u4", spec={"rotation": {"renewBefore": "1d"}, "import": {"secretRef": {
        "name": "legacy"}}}, expiresAt="2030-01-10T00:00:00Z"))
    samples = scrape(collector)
    assert samples[key("tokenwarden_credential_expiration_timestamp_seconds", "a")] == 1894233600.0
    assert samples[key("tokenwarden_credential_next_rotation_timestamp_seconds", "a")] == 1894233600.0 - 86400
    assert samples[key("tokenwarden_credential_last_used_timestamp_seconds", "a")] == 1893542400.0
    assert samples[key("tokenwarden_credential_created_timestamp_seconds", "b")] == 1893456000.0
    assert key("tokenwarden_credential_expiration_timestamp_seconds", "b") not in samples
    assert key("tokenwarden_credential_last_used_timestamp_seconds", "b") not in samples
    assert not any(labels == key("", "c")[1] for _, labels in samples)  # not Active: no series
    assert key("tokenwarden_credential_next_rotation_timestamp_seconds", "d") not in samples  # imported: never rotates

    collector.count("rotations", "team", "ServiceToken", "a", "rotated")
    collector.count("rotations", "team", "ServiceToken", "a", "rotated")
    collector.count("restarts", "team", "ServiceToken", "a", "failed")
    samples = scrape(collector)
    assert samples[key("tokenwarden_credential_rotations_total", "a", result="rotated")] == 2
    assert samples[key("tokenwarden_credential_restarts_total", "a", result="failed")] == 1
    assert key("tokenwarden_credential_rotations_total", "a", result="failed") not in samples

    indexes.observe("ServiceToken", token("a", "u1"), deleted=True)
    samples = scrape(collector)
    assert not any(dict(labels).get("name") == "a" for _, labels in samples)
    assert collector.counts == {}


def test_verifications_per_credential_are_bounded_and_forgotten():
    counts = CredentialVerifications(limit=2)
    for name, result in [("a", "ok"), ("a", "ok"), ("a", "expired"), ("b", "ok"), ("c", "ok"), ("c", "revoked")]:
        counts.record("team", "ServiceToken", name, result)
    samples = scrape(counts)
    assert samples[key("tokenwarden_credential_verifications_total", "a", result="ok")] == 2
    assert samples[key("tokenwarden_credential_verifications_total", "a", result="expired")] == 1
    assert key("tokenwarden_credential_verifications_total", "c", result="ok") not in samples
    assert samples[("tokenwarden_credential_verifications_untracked_total", ())] == 2
    counts.forget("team", "ServiceToken", "a")  # deleted: its series go, and its place is free
    counts.record("team", "ServiceToken", "c", "ok")
    samples = scrape(counts)
    assert key("tokenwarden_credential_verifications_total", "a", result="ok") not in samples
    assert samples[key("tokenwarden_credential_verifications_total", "c", result="ok")] == 1

    off = CredentialVerifications(limit=0)
    off.record("team", "ServiceToken", "a", "ok")
    assert b'name="a"' not in generate_latest(_registry(off))


def _registry(collector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def test_last_sync_is_now_while_watching_and_the_break_while_broken():
    now = [1000.0]
    reflector = Reflector("ServiceToken", None, None, None, stop=threading.Event(), clock=lambda: now[0])
    sync = IndexSync()
    sync.reflectors = [reflector]
    assert scrape(sync) == {}  # not listed yet
    reflector.synced = True
    assert abs(scrape(sync)[("tokenwarden_authenticator_last_sync_timestamp_seconds",
                             (("kind", "ServiceToken"),))] - time.time()) < 60
    reflector.broken_since = 1000.0
    now[0] = 1600.0  # broken for ten minutes
    age = time.time() - scrape(sync)[("tokenwarden_authenticator_last_sync_timestamp_seconds",
                                      (("kind", "ServiceToken"),))]
    assert 599 < age < 660


class _Activity:
    def __init__(self, paused: bool) -> None:
        self.is_paused = paused

    def paused(self) -> bool:
        return self.is_paused


def test_phases_of_every_credential_come_from_the_active_replica_only():
    indexes = Indexes([])
    collector = CredentialCollector()
    collector.credentials = indexes.credentials
    indexes.observe("ServiceToken", token("ready", "u1"))
    indexes.observe("ServiceToken", token("stuck", "u2", phase="Failed"))
    indexes.observe("ServiceToken", {**token("new", "u3"), "status": {}})  # no status yet: Pending
    collector.activity = _Activity(paused=False)
    phases = {labels: value for (name, labels), value in scrape(collector).items()
              if name == "tokenwarden_credential_phase"}
    assert phases == {key("tokenwarden_credential_phase", "ready", phase="Active")[1]: 1,
                      key("tokenwarden_credential_phase", "stuck", phase="Failed")[1]: 1,
                      key("tokenwarden_credential_phase", "new", phase="Pending")[1]: 1}
    # A standby's indexes are as old as its start: it shows no phase, so no alert fires on its view.
    collector.activity = _Activity(paused=True)
    assert not [name for name, _ in scrape(collector) if name == "tokenwarden_credential_phase"]
