"""Workload identity: a Kubernetes service-account token, checked by kube-apiserver with a
TokenReview, authenticates as the tokenwarden ServiceAccount of its namespace that lists it.

The TokenReview answer is cached (positive: at most ``cache_ttl`` and never past the token's
own ``exp``; negative: briefly, in a bounded cache), keyed by the token's sha256, never the
token. Before a review is spent, the token's signature is checked against the cluster's
service-account issuer keys (_issuer.py): a made-up JWT costs kube-apiserver nothing. Reviews
of signed tokens share ``rate`` a second fairly among namespaces (_budget.py). Which account the service account maps to, and whether
that account is disabled or being deleted, and what its bindings grant now, is looked up on
every request: a cached answer never outlives the account, nor a binding.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tokenwarden.authn._budget import FairBudget
from tokenwarden.authn._index import WORKLOAD, Identity, TokenIndex
from tokenwarden.authn._issuer import IssuerKeys
from tokenwarden.authn._jwt import peek, refusal, service_account_of
from tokenwarden.authn._metrics import WORKLOAD_CACHE, WORKLOAD_REFUSALS, WORKLOAD_REVIEWS
from tokenwarden.config import WorkloadIdentitySettings

logger = logging.getLogger("tokenwarden.authenticator")
# Children bound once: .labels() is a lock and a lookup per call.
_CACHE_HIT = WORKLOAD_CACHE.labels(result="hit")
_CACHE_MISS = WORKLOAD_CACHE.labels(result="miss")

@dataclass(frozen=True)
class Review:
    """What kube-apiserver answered to one TokenReview."""

    authenticated: bool
    username: str = ""
    audiences: tuple[str, ...] = ()
    error: str = ""


class ReviewUnavailable(Exception):
    """The TokenReview could not be made (API server away, no permission): nothing is cached."""


# review(token, audiences) -> Review, called in a thread; raises ReviewUnavailable.
Reviewer = Callable[[str, Sequence[str]], Review]


@dataclass(frozen=True)
class Reviewed:
    """A cached TokenReview answer: the service account, or why not."""

    until: float                  # seconds since the epoch
    service_account: tuple[str, str] | None = None  # (namespace, name)
    reason: str = ""


@dataclass(frozen=True)
class WorkloadVerdict:
    status: int                   # 200, 401, 429 or 503
    reason: str
    identity: Identity | None = None
    service_account: str | None = None  # the Kubernetes ServiceAccount, for via=workload:<name>


class BoundedCache:
    """Reviewed answers by key, at most ``size``; the oldest written goes first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[bytes, Reviewed] = OrderedDict()

    def get(self, key: bytes, now: float) -> Reviewed | None:
        found = self.entries.get(key)
        if found is not None and found.until <= now:
            del self.entries[key]
            return None
        return found

    def put(self, key: bytes, answer: Reviewed) -> None:
        self.entries.pop(key, None)
        self.entries[key] = answer
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)


def cache_key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def remember(review: Review, audiences: Sequence[str], expires: float, now: float,
             settings: WorkloadIdentitySettings) -> Reviewed:
    """What to cache of a TokenReview answer, and until when: an authenticated service account
    for at most cacheTTL and never past ``expires`` (the token's exp); anything else, why, for
    negativeCacheTTL."""
    refused = now + settings.negative_cache_ttl.total_seconds()
    if not review.authenticated:
        return Reviewed(refused, reason="rejected")
    # kube-apiserver answers with the audiences the token is valid for: one must be ours. An
    # answer with none, to a review that sent ours, is refused too: the TokenReview API says a
    # client that sent audiences must not trust an authenticator that did not check them.
    if not set(review.audiences) & set(audiences):
        return Reviewed(refused, reason="audience")
    account = service_account_of(review.username)
    if account is None:
        return Reviewed(refused, reason="not-service-account")
    return Reviewed(min(now + settings.cache_ttl.total_seconds(), expires), account)


def bind(index: TokenIndex, service_account: tuple[str, str]) -> WorkloadVerdict:
    """The tokenwarden account that lists the Kubernetes ServiceAccount, as the index holds it
    now, and its roles; or why there is none."""
    namespace, name = service_account
    accounts = index.workloads.get(service_account)
    if not accounts:
        return WorkloadVerdict(401, "unbound", service_account=name)
    if len(accounts) > 1:  # two accounts list it: grant neither rather than guess
        return WorkloadVerdict(401, "ambiguous", service_account=name)
    [account_name] = accounts
    account = index.accounts.get((namespace, account_name))
    # All its account's bindings grant now, as its tokens that request no roles carry.
    identity = Identity(kind=WORKLOAD, namespace=namespace, name=account_name, account=account_name,
                        roles=index.granted(namespace, account_name).roles if account else (), phase="Active",
                        expires_at=None, account_uid=account.uid if account else None)
    if account is None or account.deleting:
        return WorkloadVerdict(401, "deleted", identity, name)
    if account.disabled:
        return WorkloadVerdict(401, "disabled", identity, name)
    return WorkloadVerdict(200, "ok", identity, name)


class WorkloadVerifier:
    """Answers for workload tokens: cache, claims, signature, rate limit, TokenReview, then the index."""

    def __init__(self, settings: WorkloadIdentitySettings, audiences: Sequence[str], index: TokenIndex,
                 reviewer: Reviewer, clock: Callable[[], float], keys: IssuerKeys) -> None:
        self.settings = settings
        self.audiences = tuple(audiences)
        self.index = index
        self.reviewer = reviewer
        self.clock = clock
        self.keys = keys
        self.positive = BoundedCache(settings.cache_size)
        self.negative = BoundedCache(settings.negative_cache_size)
        self.budget = FairBudget(settings.reviews_per_second, settings.review_burst, clock,
                                 wait=settings.review_wait.total_seconds(), queue=settings.review_queue)
        self.in_flight: dict[bytes, asyncio.Future] = {}
        # service account -> (account name, the index's Account and Grant objects, the verdict bind gave)
        self.bound: dict[tuple[str, str], tuple[str, object, object, WorkloadVerdict]] = {}

    async def verify(self, token: str) -> WorkloadVerdict:
        verdict = await self._verify(token)
        if verdict.status != 200:
            WORKLOAD_REFUSALS.labels(reason=verdict.reason).inc()
        return verdict

    async def _verify(self, token: str) -> WorkloadVerdict:
        now = self.clock()
        key = cache_key(token)
        # A cached answer first: it was reviewed for our audiences and ends by the token's exp,
        # so the look at the claims (base64 and JSON, most of a cached request's cost) is spared.
        answer = self.positive.get(key, now) or self.negative.get(key, now)
        if answer is not None:
            _CACHE_HIT.inc()
        else:
            claims = peek(token)
            why = refusal(claims, self.audiences, now)
            if why is None:
                why = await self.keys.check(claims)
            if why == "issuer-keys-unavailable":  # not the token's fault: try again shortly
                return WorkloadVerdict(503, why)
            if why is not None:
                return WorkloadVerdict(401, why)
            # Signed by the cluster's issuer: its subject is the ServiceAccount it was issued to.
            account = service_account_of(claims.subject)
            if account is None:
                return WorkloadVerdict(401, "not-service-account")
            _CACHE_MISS.inc()
            try:
                answer = await self._review(key, token, claims.expires, account[0])
            except ReviewUnavailable:
                return WorkloadVerdict(503, "review-unavailable")
            if answer is None:
                return WorkloadVerdict(429, "review-rate-limited")
        if answer.service_account is None:
            return WorkloadVerdict(401, answer.reason)
        return self._bind(answer.service_account)

    def _bind(self, service_account: tuple[str, str]) -> WorkloadVerdict:
        """``bind``, its verdict reused while the index holds the same account and grant objects
        for the service account (a change of the account, or of one of its bindings, replaces one)."""
        namespace, _ = service_account
        listing = self.index.workloads.get(service_account)
        account_name = next(iter(listing)) if listing and len(listing) == 1 else None
        account = self.index.accounts.get((namespace, account_name)) if account_name else None
        grant = self.index.granted(namespace, account_name) if account_name else None
        known = self.bound.get(service_account)
        if account is not None and known is not None and known[0] == account_name and known[1] is account \
                and known[2] is grant:
            return known[3]
        verdict = bind(self.index, service_account)
        if account is not None:
            if len(self.bound) >= self.settings.cache_size:
                self.bound.clear()
            self.bound[service_account] = (account_name, account, grant, verdict)
        return verdict

    async def _review(self, key: bytes, token: str, expires: float, namespace: str) -> Reviewed | None:
        """One TokenReview per key at a time: requests that come meanwhile share its answer.
        None when the namespace's share of the budget allows no call now, nor within the wait."""
        pending = self.in_flight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        pending = self.in_flight[key] = asyncio.get_running_loop().create_future()
        try:
            allowed = await self.budget.acquire(namespace)
        except BaseException:  # cancelled while waiting: those who share it are refused, not cancelled
            del self.in_flight[key]
            pending.set_result(None)
            raise
        if not allowed:
            del self.in_flight[key]
            pending.set_result(None)  # those who waited on this one are refused with it
            return None
        try:
            try:
                review = await asyncio.to_thread(self.reviewer, token, self.audiences)
            except ReviewUnavailable as exc:
                WORKLOAD_REVIEWS.labels(result="error").inc()
                logger.warning("TokenReview failed: %s", exc)
                pending.set_exception(exc)
                pending.exception()  # retrieved: asyncio need not report it when no one waited
                raise
            WORKLOAD_REVIEWS.labels(result="authenticated" if review.authenticated else "rejected").inc()
            answer = remember(review, self.audiences, expires, self.clock(), self.settings)
            (self.positive if answer.service_account else self.negative).put(key, answer)
            if answer.service_account:
                logger.debug("TokenReview: via=workload:%s in namespace %s", answer.service_account[1],
                             answer.service_account[0])
            else:
                logger.debug("TokenReview refused a workload token: %s", review.error or answer.reason)
            pending.set_result(answer)
            return answer
        finally:
            del self.in_flight[key]
            if not pending.done():  # cancelled while waiting for the review
                pending.cancel()
