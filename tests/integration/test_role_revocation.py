"""A role taken away needs no operator: the authenticator watches the RoleBindings and takes a
credential's roles from them and from its spec, so a binding deleted (or being deleted, held
by someone's finalizer) grants nothing to the account's tokens and workload identities, in
/verify and in TokenReview groups, and a standalone token's shrunk spec.roles is cut, with the
operator stopped. The operator, for its part, mints no token with a role of a binding being
deleted. Each test waits on the authenticator's answers, with a deadline."""
from __future__ import annotations

import base64

import requests
from kubernetes import client

from .kubehelpers import GROUP, PLURALS, VERSION, create, eventually, phase_is, ready_reason, wait_for

HOLD = "tests.tokenwarden.io/hold"  # a finalizer of nobody's: the binding stays, being deleted
REVOKED_WITHIN = 5.0  # seconds: the deadline for the authenticator's answers to change


def _secret_token(core, namespace: str, name: str) -> str:
    return base64.b64decode(core.read_namespaced_secret(name, namespace).data["token"]).decode()


def _workload_token(core, namespace: str, name: str) -> str:
    """A Kubernetes service-account token for audience tokenwarden, from the TokenRequest API."""
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name)))
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=["tokenwarden"], expiration_seconds=600))
    return core.create_namespaced_service_account_token(name, namespace, request).status.token


def _status(authenticator, token: str, permission: str) -> int:
    return authenticator.get(f"/verify?permission={permission}", {"Authorization": f"Bearer {token}"}).status_code


def _groups(authenticator, token: str) -> set[str]:
    """The groups the authenticator's TokenReview webhook answers for ``token`` (none when refused)."""
    review = requests.post(authenticator.url + "/apis/authentication.k8s.io/v1/tokenreviews",
                           json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                 "spec": {"token": token}}, verify=authenticator.ca, timeout=5).json()["status"]
    return set((review.get("user") or {}).get("groups") or ())


def _grants(authenticator, tokens: list[str], workloads: list[str], namespace: str, role: str,
            permission: str) -> bool:
    """Whether every credential is granted ``role``: /verify allows ``permission``, and the
    TokenReview groups (tokenwarden tokens: workloads never authenticate to Kubernetes) name it."""
    group = f"tokenwarden:{namespace}:role:{role}"
    return all(_status(authenticator, t, permission) == 200 for t in tokens + workloads) and \
        all(group in _groups(authenticator, t) for t in tokens)


def _granted_nowhere(authenticator, tokens: list[str], workloads: list[str], namespace: str, role: str,
                     permission: str) -> bool:
    group = f"tokenwarden:{namespace}:role:{role}"
    return all(_status(authenticator, t, permission) == 403 for t in tokens + workloads) and \
        not any(group in _groups(authenticator, t) for t in tokens)


def _account(custom, namespace: str, name: str, workload: str, *, hold_reader: bool = False) -> None:
    """An account whose workload identity is ``workload``, bound to writer and to reader."""
    create(custom, "ServiceAccount", namespace, name, {"workloadIdentities": [{"serviceAccountName": workload}]})
    create(custom, "RoleBinding", namespace, f"{name}-writer", {"serviceAccountName": name, "roles": ["writer"]})
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RoleBinding",
            "metadata": {"name": f"{name}-reader", "finalizers": [HOLD] if hold_reader else []},
            "spec": {"serviceAccountName": name, "roles": ["reader"]}}
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS["RoleBinding"], body)


def _minted(custom, core, namespace: str, name: str, spec: dict, roles: list[str]) -> str:
    create(custom, "ServiceToken", namespace, name, spec)
    wait_for(custom, "ServiceToken", namespace, name,
             lambda o: phase_is("Active")(o) and o["status"].get("effectiveRoles") == roles)
    return _secret_token(core, namespace, name)


def _delete_binding(custom, namespace: str, name: str) -> None:
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS["RoleBinding"], name)


def test_a_binding_deleted_while_the_operator_is_down_stops_granting_at_once(operator, authenticator, custom, core,
                                                                            namespace):
    _account(custom, namespace, "shipper", "shipper-agent")
    account_token = _minted(custom, core, namespace, "shipper-token", {"serviceAccountName": "shipper"},
                            ["reader", "writer"])
    standalone = _minted(custom, core, namespace, "solo", {"roles": ["writer", "reader"]}, ["reader", "writer"])
    workload = _workload_token(core, namespace, "shipper-agent")
    tokens, workloads = [account_token, standalone], [workload]
    assert eventually(lambda: _grants(authenticator, tokens, workloads, namespace, "reader", "read"), 30), \
        authenticator.log()[-3000:]

    operator.stop(kill=True)
    try:
        _delete_binding(custom, namespace, "shipper-reader")
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS["ServiceToken"], "solo",
                                              {"spec": {"roles": ["writer"]}})
        # /verify and TokenReview asked together, until both answer without reader.
        assert eventually(lambda: _granted_nowhere(authenticator, tokens, workloads, namespace, "reader", "read"),
                          REVOKED_WITHIN), authenticator.log()[-3000:]
        # What stays granted stays: writer, from its own binding and the standalone token's spec.
        assert _grants(authenticator, tokens, workloads, namespace, "writer", "write")
        # Nothing the operator writes was involved: the statuses still name reader.
        for name in ("shipper-token", "solo"):
            status = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS["ServiceToken"],
                                                         name)["status"]
            assert status["effectiveRoles"] == ["reader", "writer"]
    finally:
        operator.start()

    # Back, the operator agrees, and a token minted now does not get reader.
    wait_for(custom, "ServiceToken", namespace, "shipper-token", lambda o: o["status"]["effectiveRoles"] == ["writer"])
    wait_for(custom, "ServiceToken", namespace, "solo", lambda o: o["status"]["effectiveRoles"] == ["writer"])
    later = _minted(custom, core, namespace, "shipper-later", {"serviceAccountName": "shipper"}, ["writer"])
    assert _granted_nowhere(authenticator, [later], [], namespace, "reader", "read")


def test_a_binding_held_by_a_finalizer_grants_nothing_once_it_is_being_deleted(operator, authenticator, custom,
                                                                              core, namespace):
    _account(custom, namespace, "holder", "holder-agent", hold_reader=True)
    try:
        account_token = _minted(custom, core, namespace, "holder-token", {"serviceAccountName": "holder"},
                                ["reader", "writer"])
        workload = _workload_token(core, namespace, "holder-agent")
        assert eventually(lambda: _grants(authenticator, [account_token], [workload], namespace, "reader", "read"),
                          30), authenticator.log()[-3000:]

        _delete_binding(custom, namespace, "holder-reader")
        held = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS["RoleBinding"], "holder-reader")
        assert held["metadata"]["deletionTimestamp"] and held["metadata"]["finalizers"] == [HOLD]
        assert eventually(lambda: _granted_nowhere(authenticator, [account_token], [workload], namespace, "reader",
                                                   "read"), REVOKED_WITHIN), authenticator.log()[-3000:]
        assert _grants(authenticator, [account_token], [workload], namespace, "writer", "write")

        # The operator agrees: the token's and the account's roles lose reader, a token minted
        # meanwhile is minted without it, and one that asks for reader waits for a binding.
        wait_for(custom, "ServiceToken", namespace, "holder-token",
                 lambda o: o["status"]["effectiveRoles"] == ["writer"])
        wait_for(custom, "ServiceAccount", namespace, "holder",
                 lambda o: (o.get("status") or {}).get("effectiveRoles") == ["writer"])
        later = _minted(custom, core, namespace, "holder-later", {"serviceAccountName": "holder"}, ["writer"])
        assert _granted_nowhere(authenticator, [later], [], namespace, "reader", "read")
        create(custom, "ServiceToken", namespace, "holder-reads", {"serviceAccountName": "holder", "roles": ["reader"]})
        waiting = wait_for(custom, "ServiceToken", namespace, "holder-reads", phase_is("Pending"))
        assert ready_reason(waiting) == "RolesNotGranted"
        assert not core.list_namespaced_secret(namespace, field_selector="metadata.name=holder-reads").items
    finally:
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS["RoleBinding"], "holder-reader",
                                              {"metadata": {"finalizers": None}})
