"""Leak check, run last: every token this session minted or imported is searched for in every
log line, event, custom object (annotations and status included) and metric. None may appear."""
from __future__ import annotations

import base64
import json


from .kubehelpers import GROUP, VERSION, PLURALS, create, phase_is, wait_for


def _every_token(core) -> set[str]:
    values = set()
    for secret in core.list_secret_for_all_namespaces().items:
        for key, raw in (secret.data or {}).items():
            if key in ("token", "token.previous") and raw:
                value = base64.b64decode(raw).decode(errors="replace")
                if len(value) >= 16:
                    values.add(value)
    return values


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

    tokens = _every_token(core)
    assert token in tokens and len(tokens) >= 2  # the rotated token and its predecessor, at least

    haystacks = {
        "operator log": operator.log(),
        "authenticator log": authenticator.log(),
        "operator metrics": operator.metrics(),
        "authenticator metrics": authenticator.internal("/metrics").text,
        "events": json.dumps(core.list_event_for_all_namespaces().to_dict(), default=str),
    }
    for kind, plural in PLURALS.items():
        objects = custom.list_cluster_custom_object(GROUP, VERSION, plural)["items"]
        haystacks[f"{kind} objects"] = json.dumps(objects)
    for name, text in haystacks.items():
        found = [t[:8] + "…" for t in tokens if t in text]
        assert not found, f"{len(found)} token(s) found in {name}"
        # Base64 of a token is the token too.
        found = [t[:8] + "…" for t in tokens if base64.b64encode(t.encode()).decode() in text]
        assert not found, f"{len(found)} base64 token(s) found in {name}"
