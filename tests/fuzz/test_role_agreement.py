"""The operator and the authenticator agree on the roles a credential carries: after any
sequence of RoleBindings created, changed, deleted or marked for deletion, the operator's
status.effectiveRoles (its binding index and plan_roles, as minting and settling write it)
and the authenticator's answer (its binding store and index, as /verify and TokenReview use
it) are the same, for tokens of an account, standalone tokens and workload identities."""
from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tokenwarden import policies
from tokenwarden.authn import Account, TokenIndex
from tokenwarden.authn._bindings import BindingStore
from tokenwarden.authn._watch import TokenStore
from tokenwarden.authn._workload import bind
from tokenwarden.config import Settings
from tokenwarden.handlers._indexes import Indexes
from tokenwarden.handlers._mint import roles_for
from tokenwarden.handlers._token_kinds import SERVICE_TOKEN

CATALOG = Settings().roles
ROLES = (*sorted(CATALOG), "ghost")  # ghost: a role outside the catalog
NAMESPACES = ("team", "other")
ACCOUNTS = ("agents", "ci")
role_lists = st.lists(st.sampled_from(ROLES), max_size=3, unique=True)

put = st.tuples(st.just("put"), st.sampled_from(NAMESPACES), st.sampled_from(("b1", "b2", "b3", "b4")),
                st.sampled_from(ACCOUNTS), role_lists, st.sampled_from((None, "shop", "lab")), st.booleans())
delete = st.tuples(st.just("delete"), st.sampled_from(NAMESPACES), st.sampled_from(("b1", "b2", "b3", "b4")))


def _binding(namespace: str, name: str, account: str, roles: list[str], project: str | None,
             deleting: bool) -> dict:
    metadata = {"namespace": namespace, "name": name, "uid": f"uid-{namespace}-{name}"}
    if deleting:
        metadata.update(deletionTimestamp="2026-12-01T00:00:00Z", finalizers=["example.com/hold"])
    spec = {"serviceAccountName": account, "roles": roles}
    if project:
        spec["project"] = project
    return {"kind": "RoleBinding", "metadata": metadata, "spec": spec}


def _token(name: str, account: str | None, roles: list[str]) -> dict:
    spec: dict = {"roles": roles} if roles else {}
    if account:
        spec["serviceAccountName"] = account
    return {"kind": "ServiceToken", "metadata": {"namespace": "team", "name": name, "uid": f"uid-{name}"},
            "spec": spec, "status": {"phase": "Active", "tokenHash": "sha256:" + "ab" * 32}}


@given(operations=st.lists(st.one_of(put, delete), max_size=12),
       tokens=st.lists(st.tuples(st.sampled_from((None, *ACCOUNTS)), role_lists), min_size=1, max_size=4))
def test_the_operator_and_the_authenticator_grant_the_same_roles(operations, tokens):
    indexes = Indexes(CATALOG)
    memo = SimpleNamespace(settings=SimpleNamespace(roles=CATALOG), indexes=indexes)
    index = TokenIndex(catalog=frozenset(CATALOG))
    bindings, token_store = BindingStore(index), TokenStore(SERVICE_TOKEN.resource.kind, index, lambda _: None)
    for account in ACCOUNTS:
        indexes.observe("ServiceAccount", {"metadata": {"namespace": "team", "name": account, "uid": account},
                                           "spec": {}})
        index.put_account(("team", account), Account(uid=account, workloads=(f"{account}-agent",)))

    for operation in operations:
        if operation[0] == "put":
            body = _binding(*operation[1:])
            indexes.observe("RoleBinding", body)
            bindings.put(*bindings.record(body))
        else:
            _, namespace, name = operation
            indexes.observe("RoleBinding", {"metadata": {"uid": f"uid-{namespace}-{name}"}}, deleted=True)
            bindings.drop((namespace, name))

    for number, (account, roles) in enumerate(tokens):
        body = _token(f"t{number}", account, roles)
        try:
            spec = SERVICE_TOKEN.spec_model.model_validate(body["spec"])
        except ValidationError:
            continue  # refused at admission by the API server's schema: never minted
        plan = roles_for(SERVICE_TOKEN, spec, "team", memo)
        operator = [] if isinstance(plan, policies.Problem) else plan.effective_roles  # as _settle writes it
        _, ((identity, _, _), _) = token_store.record(body)
        assert list(index.roles_of(identity)) == operator, (account, roles)

    for account in ACCOUNTS:
        operator = policies.granted_roles(indexes.bindings.get(("team", account)))  # the account's effectiveRoles
        verdict = bind(index, ("team", f"{account}-agent"))
        assert verdict.status == 200 and list(verdict.identity.roles) == operator, account
