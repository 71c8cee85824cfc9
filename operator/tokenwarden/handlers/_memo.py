from __future__ import annotations

import asyncio
import contextlib

import kopf
from kubernetes import client

from tokenwarden.config import Settings
from tokenwarden.handlers._import_key import ImportKeys
from tokenwarden.handlers._indexes import Indexes
from tokenwarden.handlers._listings import LISTINGS, Activity, Listings
from tokenwarden.handlers._schedule import Scheduler
from tokenwarden.kube import access, load_api_client


WORKERS = 20  # kopf's threads for sync handlers; the API client keeps as many connections


class OperatorMemo(kopf.Memo):
    """What every handler shares: the settings and one API client."""

    settings: Settings
    core: client.CoreV1Api
    custom: client.CustomObjectsApi
    namespaces: list[str]  # served; empty for all
    serves_admission: bool  # this process serves the admission webhook (handlers/_admission_check.py)
    indexes: Indexes
    activity: Activity  # whether kopf has paused this replica (peering)
    listings: Listings  # kopf's streams of the four kinds, which feed the indexes (handlers/_listings.py)
    scheduler: Scheduler  # every token's timers: expiry, renewal, collection (handlers/_schedule.py)
    last_uses: dict  # TokenUsage entries already copied into lastUsedAt (handlers/_usage.py)
    import_keys: ImportKeys
    reviews: access.ReviewCache  # admission's SubjectAccessReview answers (handlers/_admission.py)

    def __copy__(self) -> OperatorMemo:
        # kopf copies the memo for every object it sees and keeps the copy until the object is
        # deleted; nothing here is per object, so every object shares this one.
        return self

    @classmethod
    def create(cls, settings: Settings, namespaces: list[str] | None = None) -> OperatorMemo:
        api = load_api_client(pool_size=WORKERS + 4)
        memo = cls()
        memo.settings = settings
        memo.core = client.CoreV1Api(api)
        memo.custom = client.CustomObjectsApi(api)
        memo.namespaces = list(namespaces or [])
        memo.serves_admission = True
        memo.indexes = Indexes(settings.roles)
        memo.scheduler = Scheduler(settings.expired_retention)
        memo.indexes.scheduler = memo.scheduler  # every token the indexes see, the scheduler sees
        memo.activity = LISTINGS.activity
        memo.listings = LISTINGS
        memo.last_uses = {}
        memo.import_keys = ImportKeys()
        memo.reviews = access.ReviewCache()
        return memo


async def end_task(memo, name: str) -> None:
    """Cancel the background task a startup handler kept in ``memo`` under ``name`` (if it
    started one), and wait until it has ended: what each cleanup handler does with its task."""
    task = getattr(memo, name, None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
