"""Only the replica that leads expires tokens: a standby that holds a token's timer acts on
nothing while another replica holds the lead, also once the instant has passed, and on taking
over it expires at once what came due meanwhile.

Two operators run under peering. The active one is killed; its peering record says it lives
for ten minutes more, so the standby stays paused past the token's expiry. The record is then
removed, as it would lapse, and the standby takes over."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from ..conftest import OperatorProcess
from .kubehelpers import GROUP, VERSION, create, eventually, phase_is, wait_for
from .test_minting import _wait_gone
from .test_replica_admission import LEADS
from .test_resilience import peering  # noqa: F401  (fixture)

PAUSED = "Pausing the watch-stream for servicetokens"  # kopf's (debug) line while a replica stands by
LONG_LIVED = 600  # seconds: the active replica's peering lifetime; its record outlives it by this much


@pytest.fixture
def active_and_standby(operator, peering, cluster, custom, tmp_path):  # noqa: F811
    """(active, standby), not started, in place of the session's operator."""
    operator.stop()
    replicas = []
    for name, args in (("active", ["--priority", "100", "--peering-lifetime", f"{LONG_LIVED}s"]),
                       ("standby", ["--priority", "50"])):
        (tmp_path / name).mkdir()
        replicas.append(OperatorProcess(cluster.kubeconfig, tmp_path / name, ["--peering", peering, *args],
                                        webhook=False))
    try:
        yield replicas
    finally:
        for replica in replicas:
            replica.stop()
        _forget_long_lived(custom, peering)  # or the other tests' replicas would pause for it
        operator.start()


def _forget_long_lived(custom, peering: str) -> None:
    """Remove the killed active replica's peering record, as kopf drops one whose lifetime ran out."""
    peers = custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", peering).get("status") or {}
    gone = {peer: None for peer, record in peers.items()
            if isinstance(record, dict) and record.get("lifetime") == LONG_LIVED}
    if gone:
        # kopf's peering CRD has no status subresource: the status is written with the object.
        custom.patch_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", peering, {"status": gone})


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_standby_expires_nothing_until_it_leads_then_what_came_due_at_once(
        active_and_standby, peering, custom, core, namespace):  # noqa: F811
    active, standby = active_and_standby
    active.start()
    assert eventually(lambda: LEADS in active.log(), timeout=60), active.log()[-3000:]
    create(custom, "ServiceToken", namespace, "due-meanwhile", {"roles": ["reader"], "ttl": "45s"})
    token = wait_for(custom, "ServiceToken", namespace, "due-meanwhile", phase_is("Active"))
    secret_name = token["status"]["secretName"]
    expires_at = _time(token["status"]["expiresAt"])
    standby.start()  # paused at once: it lists nothing, and so holds no timer, until it leads
    assert eventually(lambda: PAUSED in standby.log(), timeout=60), standby.log()[-3000:]

    assert datetime.now(timezone.utc) < expires_at, "staged too slowly: the token came due before the standby ran"
    active.stop(kill=True)  # its peering record stays, and keeps the standby paused
    # The instant passes with no replica leading; a scheduler that acted would have acted by a
    # second after it (it looks at a due timer at once).
    while datetime.now(timezone.utc) <= expires_at + timedelta(seconds=2):
        time.sleep(0.2)
    assert LEADS not in standby.log(), "still a standby"
    token = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", "due-meanwhile")
    assert token["status"]["phase"] == "Active", "a standby expires nothing"
    core.read_namespaced_secret(secret_name, namespace)  # and deletes no Secret

    _forget_long_lived(custom, peering)  # the dead leader's lease lapses
    assert eventually(lambda: LEADS in standby.log(), timeout=60), standby.log()[-3000:]
    expired = wait_for(custom, "ServiceToken", namespace, "due-meanwhile", phase_is("Expired"), timeout=60)
    assert expired["status"]["expiresAt"] == token["status"]["expiresAt"]
    _wait_gone(core, namespace, secret_name)  # deleted after the phase is written
