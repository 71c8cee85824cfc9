"""Admission's SubjectAccessReview cache: allowed answers only, for a short time, for exactly
the identity and attributes asked about."""
from __future__ import annotations

import asyncio

import pytest

from tokenwarden.kube._access import ReviewCache, _review_key
from tokenwarden.policies import Permission

USER = {"username": "alice", "uid": "u-1", "groups": ["team-a", "system:authenticated"],
        "extra": {"scopes": ["x"]}}
USE_SHOP = Permission("use", "tokenwarden.io", "projects", "shop")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Reviews:
    """A stand-in for the API server's answers, counting the reviews asked."""

    def __init__(self, allowed: bool = True) -> None:
        self.answer, self.asked = allowed, 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.answer


async def test_an_allowed_answer_is_reused_until_its_ttl_lapses():
    clock, reviews = Clock(), Reviews()
    cache = ReviewCache(ttl=10, clock=clock)
    key = _review_key(USER, "ns", USE_SHOP)
    assert await cache.ask(key, reviews) and await cache.ask(key, reviews)
    assert reviews.asked == 1
    clock.now += 10
    reviews.answer = False  # revoked meanwhile
    assert not await cache.ask(key, reviews)
    assert reviews.asked == 2


async def test_a_refusal_is_never_kept():
    reviews = Reviews(allowed=False)
    cache = ReviewCache(ttl=10, clock=Clock())
    key = _review_key(USER, "ns", USE_SHOP)
    assert not await cache.ask(key, reviews)
    reviews.answer = True  # granted meanwhile: counts at once
    assert await cache.ask(key, reviews)
    assert reviews.asked == 2


@pytest.mark.parametrize("user, namespace, permission", [
    ({**USER, "username": "bob"}, "ns", USE_SHOP),
    ({**USER, "uid": "u-2"}, "ns", USE_SHOP),
    ({**USER, "groups": ["team-a"]}, "ns", USE_SHOP),
    ({**USER, "extra": {"scopes": ["y"]}}, "ns", USE_SHOP),
    ({**USER, "extra": None}, "ns", USE_SHOP),
    (USER, "other", USE_SHOP),
    (USER, "ns", Permission("use", "tokenwarden.io", "projects", "other")),
    (USER, "ns", Permission("use", "tokenwarden.io", "projects", "")),
    (USER, "ns", Permission("bind", "tokenwarden.io", "roles", "shop")),
])
async def test_an_answer_counts_only_for_the_same_identity_and_attributes(user, namespace, permission):
    reviews = Reviews()
    cache = ReviewCache(ttl=10, clock=Clock())
    await cache.ask(_review_key(USER, "ns", USE_SHOP), reviews)
    await cache.ask(_review_key(user, namespace, permission), reviews)
    assert reviews.asked == 2


async def test_ttl_zero_keeps_nothing():
    reviews = Reviews()
    cache = ReviewCache(ttl=0, clock=Clock())
    key = _review_key(USER, "ns", USE_SHOP)
    await cache.ask(key, reviews)
    await cache.ask(key, reviews)
    assert reviews.asked == 2


async def test_the_cache_is_bounded_oldest_first():
    reviews = Reviews()
    cache = ReviewCache(ttl=10, size=2, clock=Clock())
    keys = [_review_key({**USER, "username": name}, "ns", USE_SHOP) for name in ("a", "b", "c")]
    for key in keys:
        await cache.ask(key, reviews)
    await cache.ask(keys[0], reviews)
    assert reviews.asked == 4


async def test_reviews_asked_at_once_share_one_answer_and_a_failure_is_not_kept():
    asked = []

    def review() -> bool:
        asked.append(1)
        return True

    cache = ReviewCache(ttl=10, clock=Clock())
    key = _review_key(USER, "ns", USE_SHOP)
    answers = await asyncio.gather(*(cache.ask(key, review) for _ in range(5)))
    assert answers == [True] * 5 and len(asked) == 1

    def failing() -> bool:
        raise RuntimeError("API server away")

    other = _review_key(USER, "ns", Permission("bind", "tokenwarden.io", "roles", "reader"))
    with pytest.raises(RuntimeError):
        await cache.ask(other, failing)
    assert await cache.ask(other, review) and len(asked) == 2
