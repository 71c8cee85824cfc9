"""Idempotent minting: restarts re-mint nothing; a crash after the Secret reuses its token."""
from __future__ import annotations

import base64
import hashlib

from kubernetes import client

from tokenwarden.tokens import mint_token

from .kubehelpers import create, get, phase_is, wait_for


def test_restart_with_active_tokens_remints_none(operator, custom, core, namespace):
    names = [f"keep-{i}" for i in range(5)]
    for name in names:
        create(custom, "ServiceToken", namespace, name, {"roles": ["reader"]})
    before = {n: wait_for(custom, "ServiceToken", namespace, n, phase_is("Active")) for n in names}
    secrets_before = {n: core.read_namespaced_secret(n, namespace).metadata.resource_version for n in names}

    operator.restart()
    # A fresh token after the restart proves the operator has caught up with its queue.
    create(custom, "ServiceToken", namespace, "after-restart", {"roles": ["reader"]})
    wait_for(custom, "ServiceToken", namespace, "after-restart", phase_is("Active"))

    for name in names:
        now = get(custom, "ServiceToken", namespace, name)
        assert now["status"]["tokenHash"] == before[name]["status"]["tokenHash"]
        assert now["status"]["issuedAt"] == before[name]["status"]["issuedAt"]
        assert core.read_namespaced_secret(name, namespace).metadata.resource_version == secrets_before[name]


def test_crash_between_secret_and_status_reuses_the_secrets_token(operator, custom, core, namespace):
    operator.stop(kill=True)
    try:
        obj = create(custom, "ServiceToken", namespace, "half-done", {"roles": ["reader"]})
        # What the operator would have written before dying: its Secret, owned by the token.
        token = mint_token("twst")
        core.create_namespaced_secret(namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(
                name="half-done",
                labels={"app.kubernetes.io/managed-by": "tokenwarden", "tokenwarden.io/token": "half-done"},
                annotations={"tokenwarden.io/token-id": "123456789012345",
                             "tokenwarden.io/issued-at": "2026-01-01T00:00:00Z",
                             # The hash it records with the token: what proves the value is its own
                             # (test_secret_authority: without it, the value is refused).
                             "tokenwarden.io/token-hash": "sha256:" + hashlib.sha256(token.encode()).hexdigest()},
                owner_references=[client.V1OwnerReference(
                    api_version="tokenwarden.io/v1alpha1", kind="ServiceToken", name="half-done",
                    uid=obj["metadata"]["uid"], controller=True)]),
            data={"token": base64.b64encode(token.encode()).decode()}))
    finally:
        operator.start()
    done = wait_for(custom, "ServiceToken", namespace, "half-done", phase_is("Active"))
    assert done["status"]["tokenHash"] == "sha256:" + hashlib.sha256(token.encode()).hexdigest()
    assert done["status"]["tokenId"] == "123456789012345"
    assert done["status"]["issuedAt"] == "2026-01-01T00:00:00Z"
