"""Leak check, run last: every token this session minted or imported is searched for in every
log line, event, custom object (annotations and status included) and metric. None may appear."""
from __future__ import annotations

import base64

from ..support_leaks import assert_no_token_in, cluster_haystacks, every_token
from .kubehelpers import GROUP, VERSION, create, phase_is, wait_for


def test_no_token_anywhere_but_its_secret(operator, authenticator, custom, core, namespace):
    # A scenario that touches every path once more: mint, verify, rotate, import.
    create(custom, "ServiceToken", namespace, "leaky", {"roles": ["writer"], "ttl": "1h",
                                                        "rotation": {"renewBefore": "5m"}})
    wait_for(custom, "ServiceToken", namespace, "leaky", phase_is("Active"))
    token = base64.b64decode(core.read_namespaced_secret("leaky", namespace).data["token"]).decode()
    for form in ({"X-API-Key": token}, {"Authorization": f"Bearer {token}"}, {"X-API-Key": token + "x"}):
        authenticator.get("/verify", form)
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", "leaky",
                                          {"metadata": {"annotations": {"tokenwarden.io/rotate": "leak-check"}}})
    wait_for(custom, "ServiceToken", namespace, "leaky", lambda o: o["status"].get("rotationRequest"))

    tokens = every_token(core)
    assert token in tokens and len(tokens) >= 2  # the rotated token and its predecessor, at least

    assert_no_token_in({
        "operator log": operator.log(),
        "authenticator log": authenticator.log(),
        "operator metrics": operator.metrics(),
        "authenticator metrics": authenticator.internal("/metrics").text,
        **cluster_haystacks(core, custom),
    }, tokens)
