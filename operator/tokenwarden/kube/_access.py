"""Ask the API server what a user may do (SubjectAccessReview), as its own RBAC decides."""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from kubernetes import client

from tokenwarden.kube._errors import translated
from tokenwarden.policies import Permission

# Well inside the admission webhook's own timeout (10 s by default in the chart).
REVIEW_TIMEOUT = 5
# How long an allowed answer is reused, and how many are kept (see ReviewCache).
REVIEW_CACHE_TTL = 10.0
REVIEW_CACHE_SIZE = 4096


def is_allowed(api_client: client.ApiClient, user: Mapping, namespace: str, permission: Permission) -> bool:
    """Whether ``user`` (an admission request's userInfo: username, uid, groups, extra) holds
    ``permission`` in ``namespace``; a cluster-wide grant counts too."""
    review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=user.get("username"), uid=user.get("uid"), groups=user.get("groups"), extra=user.get("extra"),
        resource_attributes=client.V1ResourceAttributes(
            namespace=namespace, verb=permission.verb, group=permission.group, resource=permission.resource,
            name=permission.name or None)))
    with translated(f"SubjectAccessReview of {permission.verb} on {permission.resource}"):
        answer = client.AuthorizationV1Api(api_client).create_subject_access_review(
            review, _request_timeout=REVIEW_TIMEOUT)
    return bool(answer.status and answer.status.allowed)


def _review_key(user: Mapping, namespace: str, permission: Permission) -> tuple:
    """Everything a review is asked with: the requester's whole identity and the exact attributes."""
    extra = tuple(sorted((k, tuple(v or ())) for k, v in (user.get("extra") or {}).items()))
    return (user.get("username"), user.get("uid"), tuple(user.get("groups") or ()), extra,
            namespace, permission.verb, permission.group, permission.resource, permission.name or None)


class ReviewCache:
    """Allowed answers of SubjectAccessReviews, reused for ``ttl`` seconds, as kube-apiserver's
    own webhook authorizer does (it keeps allowed answers for minutes): a burst of objects
    created by one requester asks once, not once per object. A refusal is never kept, so a
    permission just granted counts at once; a permission just revoked still counts for at
    most ``ttl``. Reviews asked the same while one is on its way wait for its answer.

    Lives on the event loop (the admission webhook's): no lock.
    """

    def __init__(self, ttl: float = REVIEW_CACHE_TTL, size: int = REVIEW_CACHE_SIZE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.size, self.clock = ttl, size, clock
        self._allowed: OrderedDict[tuple, float] = OrderedDict()  # key → when it stops counting
        self._asking: dict[tuple, asyncio.Future] = {}

    def allowed(self, key: tuple) -> bool:
        until = self._allowed.get(key)
        if until is None:
            return False
        if until <= self.clock():
            del self._allowed[key]
            return False
        return True

    def remember(self, key: tuple, allowed: bool) -> None:
        if not allowed or self.ttl <= 0:
            return
        self._allowed[key] = self.clock() + self.ttl
        self._allowed.move_to_end(key)
        while len(self._allowed) > self.size:
            self._allowed.popitem(last=False)

    async def ask(self, key: tuple, review: Callable[[], bool]) -> bool:
        """The cached answer for ``key``, else ``review()`` run in a thread (once for all who ask)."""
        if self.allowed(key):
            return True
        asking = self._asking.get(key)
        if asking is None:
            asking = asyncio.ensure_future(asyncio.to_thread(review))
            self._asking[key] = asking
            asking.add_done_callback(lambda done: self._settled(key, done))
        return await asyncio.shield(asking)

    def _settled(self, key: tuple, done: asyncio.Future) -> None:
        self._asking.pop(key, None)
        if not done.cancelled() and done.exception() is None:
            self.remember(key, done.result())


async def missing_permissions(api_client: client.ApiClient, user: Mapping, namespace: str,
                              permissions: list[Permission], cache: ReviewCache | None = None) -> list[Permission]:
    """Those of ``permissions`` that ``user`` lacks, asked all at once (of ``cache`` first, when
    given). Raises the API error when any review could not be made."""
    cache = cache or ReviewCache(ttl=0)
    unknown = [(p, key) for p in permissions if not cache.allowed(key := _review_key(user, namespace, p))]
    if not unknown:
        return []  # all answered already: no tasks to start

    def ask(permission: Permission, key: tuple):
        return cache.ask(key, lambda: is_allowed(api_client, user, namespace, permission))

    answers = await asyncio.gather(*(ask(p, key) for p, key in unknown))
    return [p for (p, _), allowed in zip(unknown, answers) if not allowed]
