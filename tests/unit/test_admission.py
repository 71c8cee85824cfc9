"""Admission handlers: what they refuse, and that a refusal counted from stale indexes (a standby
replica's, or one that missed a deletion) is counted again from the API server first."""
from __future__ import annotations

from types import SimpleNamespace

import kopf
import pytest

from tokenwarden.config import Settings
from tokenwarden.handlers import _admission
from tokenwarden.handlers._indexes import Indexes


def body(kind: str, name: str, spec: dict | None = None, namespace: str = "team") -> dict:
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{kind}-{name}"},
            "spec": spec or {}}


class FakeCustom:
    """list_namespaced_custom_object of CustomObjectsApi, from a fixed list (or an error)."""

    def __init__(self, items: list[dict] | Exception) -> None:
        self.items, self.calls = items, 0

    def list_namespaced_custom_object(self, group, version, namespace, plural, **_):
        self.calls += 1
        if isinstance(self.items, Exception):
            raise self.items
        return {"metadata": {}, "items": [i for i in self.items if i["metadata"]["namespace"] == namespace]}


def memo(indexed: list[dict], live: list[dict] | Exception, accounts: int = 2, tokens: int = 2):
    settings = Settings.model_validate({"quotas": {"maxAccountsPerNamespace": accounts,
                                                   "maxTokensPerAccount": tokens}})
    indexes = Indexes(settings.roles)
    for item in indexed:
        indexes.observe(item["kind"], item)
    return SimpleNamespace(settings=settings, indexes=indexes, custom=FakeCustom(live))


ACCOUNTS = [body("ServiceAccount", "a"), body("ServiceAccount", "b")]
TOKENS = [body("ServiceToken", n, {"serviceAccountName": "agents", "roles": ["reader"]}) for n in ("t1", "t2")]


async def test_a_quota_refusal_from_stale_indexes_is_counted_again_and_dropped():
    # The indexes still hold two accounts the API server no longer has.
    stale = memo(ACCOUNTS, live=ACCOUNTS[:1])
    await _admission.validate_account(name="c", namespace="team", operation="CREATE", old=None, new=None,
                                      memo=stale)
    assert stale.custom.calls == 1
    stale = memo(TOKENS, live=[])
    await _admission.validate_token(name="t3", namespace="team", operation="CREATE", old=None, new=None,
                                    spec={"serviceAccountName": "agents", "roles": ["reader"]}, memo=stale)


async def test_a_confirmed_quota_refusal_stands():
    full = memo(ACCOUNTS, live=ACCOUNTS)
    with pytest.raises(kopf.AdmissionError, match="at most 2 ServiceAccounts"):
        await _admission.validate_account(name="c", namespace="team", operation="CREATE", old=None, new=None,
                                          memo=full)
    full = memo(TOKENS, live=TOKENS)
    with pytest.raises(kopf.AdmissionError, match="already has 2 token"):
        await _admission.validate_token(name="t3", namespace="team", operation="CREATE", old=None, new=None,
                                        spec={"serviceAccountName": "agents", "roles": ["reader"]}, memo=full)


async def test_within_quota_no_api_call_is_made():
    fresh = memo(ACCOUNTS[:1], live=RuntimeError("not called"))
    await _admission.validate_account(name="c", namespace="team", operation="CREATE", old=None, new=None,
                                      memo=fresh)
    assert fresh.custom.calls == 0


class Paused:
    """kopf's pause state of a standby replica, as handlers._listings.Activity reports it."""

    def paused(self) -> bool:
        return True


async def test_a_standby_counts_from_the_api_server_what_its_indexes_never_saw():
    # Its indexes are as old as its start: the tokens and accounts made since are not in them.
    standby = memo([], live=TOKENS)
    standby.activity = Paused()
    with pytest.raises(kopf.AdmissionError, match="already has 2 token"):
        await _admission.validate_token(name="t3", namespace="team", operation="CREATE", old=None, new=None,
                                        spec={"serviceAccountName": "agents", "roles": ["reader"]}, memo=standby)
    standby = memo([], live=ACCOUNTS)
    standby.activity = Paused()
    with pytest.raises(kopf.AdmissionError, match="at most 2 ServiceAccounts"):
        await _admission.validate_account(name="c", namespace="team", operation="CREATE", old=None, new=None,
                                          memo=standby)
    assert standby.custom.calls == 1


async def test_a_standby_allows_what_the_api_server_has_room_for():
    standby = memo(TOKENS, live=TOKENS[:1])
    standby.activity = Paused()
    await _admission.validate_token(name="t3", namespace="team", operation="CREATE", old=None, new=None,
                                    spec={"serviceAccountName": "agents", "roles": ["reader"]}, memo=standby)
    assert standby.custom.calls == 1


async def test_when_the_api_server_is_away_the_indexes_answer():
    away = memo(ACCOUNTS, live=RuntimeError("connection refused"))
    with pytest.raises(kopf.AdmissionError, match="quota exceeded"):
        await _admission.validate_account(name="c", namespace="team", operation="CREATE", old=None, new=None,
                                          memo=away)


async def test_an_update_that_leaves_spec_alone_is_not_checked():
    """A role dropped from the catalog must not block labels, annotations or finalizers."""
    empty = memo([], live=[])
    spec = {"serviceAccountName": "agents", "roles": ["dropped"]}
    old, new = body("RoleBinding", "b", spec), body("RoleBinding", "b", spec)
    new["metadata"]["labels"] = {"team": "x"}
    await _admission.validate_binding(namespace="team", spec=spec, operation="UPDATE", old=old, new=new, memo=empty)
    await _admission.validate_token(name="t", namespace="team", spec=spec, operation="UPDATE", old=old, new=new,
                                    memo=empty)
    changed = body("RoleBinding", "b", {**spec, "roles": ["dropped", "reader"]})
    with pytest.raises(kopf.AdmissionError, match="dropped is not in the role catalog"):
        await _admission.validate_binding(namespace="team", spec=changed["spec"], operation="UPDATE", old=old, new=changed,
                                          memo=empty)
    with pytest.raises(kopf.AdmissionError, match="not in the role catalog"):
        await _admission.validate_binding(namespace="team", spec=spec, operation="CREATE", old=None, new=new, memo=empty)


async def test_tokens_that_can_no_longer_verify_do_not_count():
    failed = [body("ServiceToken", n, {"serviceAccountName": "agents"}) for n in ("f1", "f2")]
    for item, phase in zip(failed, ("Failed", "Expired")):
        item["status"] = {"phase": phase}
    crowded = memo(TOKENS[:1] + failed, live=RuntimeError("not called"))
    await _admission.validate_token(name="t3", namespace="team", operation="CREATE", old=None, new=None,
                                    spec={"serviceAccountName": "agents", "roles": ["reader"]}, memo=crowded)
    assert crowded.custom.calls == 0


@pytest.mark.parametrize("kind, validate, spec", [
    ("ServiceToken", _admission.validate_token, {"roles": ["reader"]}),
    ("IngestionAPIKey", _admission.validate_key, {}),
])
async def test_an_update_the_model_refuses_is_refused_with_its_message(kind, validate, spec):
    """The schema cannot compare two durations; the model can, and admission says what it said."""
    old = body(kind, "t", {**spec, "ttl": "30d"})
    edited = {**spec, "ttl": "30d", "rotation": {"renewBefore": "30d"}}
    with pytest.raises(kopf.AdmissionError, match="renewBefore must be shorter than ttl"):
        await validate(name="t", namespace="team", spec=edited, operation="UPDATE", old=old,
                       new=body(kind, "t", edited), memo=memo([], live=[]))


def test_every_webhook_is_registered_as_listed():
    registry = kopf.OperatorRegistry()
    _admission.register(registry)
    registered = {h.id: (h.selector.any_name, tuple(h.operations)) for h in registry._webhooks.get_all_handlers()}
    assert registered == {i: (resource.plural, ops) for i, (resource, ops, _) in _admission.WEBHOOKS.items()}


async def test_a_grant_that_cannot_be_checked_is_refused_with_the_cause():
    """Fail closed: no API server answers the SubjectAccessReview, so the grant is refused, with
    a message that says so; a change that grants nothing new needs no review at all."""
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = "https://127.0.0.1:1"
    configuration.retries = False
    away = memo([], live=[])
    away.core = client.CoreV1Api(client.ApiClient(configuration))
    spec = {"serviceAccountName": "agents", "roles": ["reader"], "project": "shop"}
    user = {"username": "alice", "groups": ["system:authenticated"]}
    with pytest.raises(kopf.AdmissionError, match="permissions could not be checked") as refused:
        await _admission.validate_binding(namespace="team", spec=spec, operation="CREATE", old=None,
                                          new=body("RoleBinding", "b", spec), memo=away, userinfo=user)
    assert "Traceback" not in str(refused.value)
    await _admission.validate_key(namespace="team", spec={"project": "shop", "description": "new"},
                                  operation="UPDATE",
                                  old=body("IngestionAPIKey", "k", {"project": "shop"}),
                                  new=body("IngestionAPIKey", "k", {"project": "shop", "description": "new"}),
                                  memo=away, userinfo=user)


def _annotated(value: str | None, spec: dict | None = None) -> dict:
    token = body("ServiceToken", "t", spec or {"roles": ["reader"]})
    if value is not None:
        token["metadata"]["annotations"] = {"tokenwarden.io/rotate": value}
    return token


@pytest.mark.parametrize("validate, spec", [(_admission.validate_token, {"roles": ["reader"]}),
                                            (_admission.validate_key, {})])
async def test_a_rotate_value_longer_than_the_status_holds_is_refused_naming_the_limit(validate, spec):
    """The value is copied into status.rotationRequest (253 characters at most): a longer one
    is refused on create, and on an update that sets it even when spec is left alone."""
    settled = memo([], live=[])
    kwargs = {"namespace": "team", "memo": settled, "spec": spec}
    if validate is _admission.validate_token:
        kwargs["name"] = "t"
    with pytest.raises(kopf.AdmissionError, match=r"300 characters, longer than the 253 allowed: set a shorter"):
        await validate(operation="CREATE", old=None, new=_annotated("x" * 300, spec), **kwargs)
    with pytest.raises(kopf.AdmissionError, match="tokenwarden.io/rotate"):
        await validate(operation="UPDATE", old=_annotated("r1", spec), new=_annotated("x" * 254, spec), **kwargs)
    await validate(operation="UPDATE", old=_annotated("r1", spec), new=_annotated("x" * 253, spec), **kwargs)
    # One already there (let through while admission was away) does not stop other writes:
    # its finalizers must still go.
    await validate(operation="UPDATE", old=_annotated("x" * 300, spec), new=_annotated("x" * 300, spec), **kwargs)


def _leaked(value: str | None) -> dict:
    token = body("ServiceToken", "t", {"roles": ["reader"]})
    if value is not None:
        token["metadata"]["annotations"] = {"tokenwarden.io/leaked": value}
    return token


async def test_a_leaked_value_must_list_token_hashes_and_no_more_than_are_kept():
    """tokenwarden.io/leaked lists hashes (what `token revoke --leaked` writes), at most KEEP of
    them: anything else is refused, on create and on an update that changes only it."""
    kwargs = {"namespace": "team", "name": "t", "memo": memo([], live=[]), "spec": {"roles": ["reader"]}}
    one = "hmac-sha256:" + "a" * 64
    await _admission.validate_token(operation="UPDATE", old=_leaked(None), new=_leaked(f"{one}, sha256:{'b' * 64}"),
                                    **kwargs)
    with pytest.raises(kopf.AdmissionError, match="which is no token hash"):
        await _admission.validate_token(operation="CREATE", old=None, new=_leaked("sha256:abc"), **kwargs)
    refusals = {
        "ghp_" + "x" * 36: "which is no token hash",  # a token itself, pasted where its hash belongs
        "sha256:abc": "which is no token hash",
        ",".join(f"sha256:{i:064x}" for i in range(9)): "lists 9 hashes, more than the 8 kept",
    }
    for value, message in refusals.items():
        with pytest.raises(kopf.AdmissionError, match=message):
            await _admission.validate_token(operation="UPDATE", old=_leaked(one), new=_leaked(value), **kwargs)
    # One already there does not stop other writes (finalizers must still go).
    await _admission.validate_token(operation="UPDATE", old=_leaked("x"), new=_leaked("x"), **kwargs)


async def test_a_binding_whose_roles_are_not_names_is_refused_not_crashed_on():
    """Found by the fuzz tier: roles were checked against the catalog before the spec was parsed,
    and `roles: [null]` raised TypeError (kopf answers that with a 500)."""
    spec = {"serviceAccountName": "a", "roles": [None]}
    with pytest.raises(kopf.AdmissionError):
        await _admission.validate_binding(namespace="team", spec=spec, operation="CREATE", old=None,
                                          new=body("RoleBinding", "b", spec), memo=memo([], live=[]))


def _sample(name: str, **labels) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_each_review_is_counted_and_timed_by_kind_operation_and_result():
    async def allow(**_):
        return None

    async def refuse(**_):
        _admission._refuse(_admission.policies.Problem("UnknownRole", "role root is not in the role catalog"))

    async def fail(**_):
        raise RuntimeError("the handler broke")

    labels = {"kind": "Probe", "operation": "CREATE"}
    before = {result: _sample("tokenwarden_admission_requests_total", **labels, result=result)
              for result in ("allowed", "denied", "error")}
    await _admission.measured("Probe", allow)(operation="CREATE", name="a")
    with pytest.raises(kopf.AdmissionError, match="role root"):
        await _admission.measured("Probe", refuse)(operation="CREATE", name="b")
    with pytest.raises(RuntimeError):
        await _admission.measured("Probe", fail)(operation="CREATE", name="c")
    for result in ("allowed", "denied", "error"):
        assert _sample("tokenwarden_admission_requests_total", **labels, result=result) == before[result] + 1
        assert _sample("tokenwarden_admission_duration_seconds_count", **labels, result=result) >= 1
    assert _sample("tokenwarden_admission_denials_total", **labels, reason="UnknownRole") >= 1


async def test_a_spec_the_model_refuses_is_denied_as_invalid_spec():
    with pytest.raises(_admission.Refused) as refused:
        await _admission.validate_binding(namespace="team", spec={"roles": []}, operation="CREATE", old=None,
                                          new=None, memo=memo([], live=[]))
    assert refused.value.reason == "InvalidSpec"
