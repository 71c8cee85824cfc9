"""Who may grant what: the permissions an object needs from its creator, and on update only
those of what it newly grants."""
from __future__ import annotations

import pytest

from tokenwarden.policies import (
    Permission,
    binding_grants,
    grant_refused,
    grant_unchecked,
    key_grants,
    needed_permissions,
    token_grants,
)

GROUP = "tokenwarden.io"


def bind(role):
    return Permission("bind", GROUP, "roles", role)


def use(project=""):
    return Permission("use", GROUP, "projects", project)


def get_secret(name):
    return Permission("get", "", "secrets", name)


@pytest.mark.parametrize("granted, needed", [
    (binding_grants(["writer"], "shop"), [bind("writer"), use("shop")]),
    (binding_grants(["writer", "reader"], None), [bind("reader"), bind("writer"), use()]),
    (token_grants(["admin"], None, None), [bind("admin"), use()]),
    # A token of an account grants nothing of its own: its account's bindings were checked.
    (token_grants(["admin"], "agents", None), []),
    (token_grants(None, "agents", "legacy-key"), [get_secret("legacy-key")]),
    (token_grants(["reader"], None, "legacy-key"), [bind("reader"), get_secret("legacy-key"), use()]),
    (key_grants("shop"), [use("shop")]),
    (key_grants(None), [use()]),
], ids=["binding-in-project", "binding-everywhere", "standalone-token", "account-token", "account-import",
        "standalone-import", "key-in-project", "key-everywhere"])
def test_what_a_new_object_needs(granted, needed):
    assert needed_permissions(granted) == needed


@pytest.mark.parametrize("old, new, needed", [
    # Nothing granted changes (a description, a ttl): nothing is checked.
    (binding_grants(["writer"], "shop"), binding_grants(["writer"], "shop"), []),
    (token_grants(["admin"], None, "k"), token_grants(["admin"], None, "k"), []),
    # A role added within the project: bind on it, and use on the project again.
    (binding_grants(["writer"], "shop"), binding_grants(["writer", "admin"], "shop"), [bind("admin"), use("shop")]),
    # A role removed grants nothing new.
    (binding_grants(["writer", "reader"], "shop"), binding_grants(["writer"], "shop"), []),
    # Another project: every role is granted anew there.
    (binding_grants(["writer"], "shop"), binding_grants(["writer"], "other"), [bind("writer"), use("other")]),
    (binding_grants(["writer"], "shop"), binding_grants(["writer"], None), [bind("writer"), use()]),
    (token_grants(["reader"], None, None), token_grants(["reader", "admin"], None, None), [bind("admin"), use()]),
    (token_grants(None, "agents", "a"), token_grants(None, "agents", "b"), [get_secret("b")]),
    (key_grants("shop"), key_grants(None), [use()]),
    (key_grants(None), key_grants("shop"), [use("shop")]),
], ids=["unchanged-binding", "unchanged-token", "role-added", "role-removed", "project-changed",
        "project-dropped", "token-role-added", "import-source-changed", "key-unscoped", "key-scoped"])
def test_an_update_needs_only_what_it_newly_grants(old, new, needed):
    assert needed_permissions(new, old) == needed


def test_a_refusal_names_the_user_each_missing_permission_and_the_rule_that_allows_it():
    problem = grant_refused("alice", "team-a", "RoleBinding", [bind("admin"), use("shop")])
    assert problem.reason == "GrantNotAllowed"
    assert "user 'alice'" in problem.message and "namespace 'team-a'" in problem.message
    assert 'bind on roles.tokenwarden.io "admin" (to grant role admin)' in problem.message
    assert 'use on projects.tokenwarden.io "shop" (to grant within project shop)' in problem.message
    assert '{apiGroups: ["tokenwarden.io"], resources: [roles], verbs: [bind], resourceNames: [admin]}' \
        in problem.message
    assert '{apiGroups: ["tokenwarden.io"], resources: [projects], verbs: [use], resourceNames: [shop]}' \
        in problem.message


def test_every_project_and_a_secret_are_named_so():
    message = grant_refused("bob", "t", "ServiceToken", [use(), get_secret("key")]).message
    assert "use on projects.tokenwarden.io with no name (every one) (to grant in every project)" in message
    assert '{apiGroups: ["tokenwarden.io"], resources: [projects], verbs: [use]}' in message
    assert 'get on secrets "key" (to import a key from Secret key)' in message
    assert '{apiGroups: [""], resources: [secrets], verbs: [get], resourceNames: [key]}' in message


def test_an_unchecked_grant_is_refused_with_the_cause():
    problem = grant_unchecked("403 forbidden")
    assert problem.reason == "GrantNotChecked"
    assert "403 forbidden" in problem.message and "subjectaccessreviews" in problem.message


KUBERNETES = "https://kubernetes.default.svc.cluster.local"


def audience(name):
    return Permission("use", GROUP, "audiences", name)


def test_an_audience_beyond_the_defaults_is_a_grant_of_its_own():
    defaults = ["tokenwarden"]
    # The defaults every token has anyway need nothing; any other audience needs use on it,
    # for a token of an account too (its roles come from bindings, its audiences do not).
    assert needed_permissions(token_grants(None, "agents", None, ["tokenwarden"], defaults)) == []
    assert needed_permissions(token_grants(None, "agents", None, [KUBERNETES, "tokenwarden"], defaults)) == [
        audience(KUBERNETES)]
    assert needed_permissions(token_grants(["admin"], None, None, ["vault"], defaults)) == sorted([
        audience("vault"), bind("admin"), use()])
    # An update that adds one needs it; one that keeps or drops them needs nothing.
    before = token_grants(None, "agents", None, ["vault"], defaults)
    assert needed_permissions(token_grants(None, "agents", None, ["vault", KUBERNETES], defaults), before) == [
        audience(KUBERNETES)]
    assert needed_permissions(token_grants(None, "agents", None, None, defaults), before) == []
    # The refusal says what the permission is for.
    problem = grant_refused("alice", "team-a", "ServiceToken", [audience(KUBERNETES)])
    assert f'use on audiences.tokenwarden.io "{KUBERNETES}" (to make a token valid for audience {KUBERNETES})' \
        in problem.message
