"""What the authenticator keeps of RoleBindings: a store a reflector fills, so that the roles a
credential carries follow its account's bindings as they are now, operator or not."""
from __future__ import annotations

from tokenwarden import policies
from tokenwarden.authn._index import TokenIndex
from tokenwarden.policies import Binding


class BindingStore:
    """RoleBindings by (namespace, name): the account each grants to and what
    (policies.binding_grant, under the index's catalog); one that grants nothing is dropped."""

    def __init__(self, index: TokenIndex) -> None:
        self.index = index

    def record(self, body: dict) -> tuple[tuple[str, str], tuple[str, Binding] | None]:
        metadata = body["metadata"]
        grant = policies.binding_grant(body.get("spec") or {}, self.index.catalog,
                                       deleting=bool(metadata.get("deletionTimestamp")))
        return (metadata["namespace"], metadata["name"]), grant

    def put(self, key: tuple[str, str], record: tuple[str, Binding] | None) -> None:
        if record is None:
            self.index.drop_binding(key)
        else:
            self.index.put_binding(key, *record)

    def drop(self, key: tuple[str, str]) -> None:
        self.index.drop_binding(key)

    def keys(self):
        return list(self.index.bindings)
