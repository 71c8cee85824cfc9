"""A safety net for tokens that sit with no status, Pending, or Failed for a Secret of their name
that is not theirs (it may go away with no event the operator sees), untouched."""
from __future__ import annotations

import asyncio

import kopf

from tokenwarden.handlers._errors import kube_errors_to_kopf
from tokenwarden.handlers._indexes import waiting
from tokenwarden.handlers._listings import current
from tokenwarden.handlers._memo import end_task
from tokenwarden.handlers._mint import reconcile_now
from tokenwarden.handlers._token_kinds import KINDS_BY_NAME, Kind
from tokenwarden.kube import objects

UNSETTLED_AFTER = 60.0  # seconds a token may sit without a status, untouched, before it is looked at again
UNSETTLED_SWEEP = 15.0  # seconds between looks
UNSETTLED_LIMIT = 100  # tokens looked at per sweep: kopf's own queue does the bulk of the work


@kopf.on.startup()
async def start_unsettled_sweep(memo, logger, **_) -> None:
    """Safety net for tokens with no status, or Pending, that no event has touched for a
    while: their events may have been lost while the API server was away. One task for
    all of them, fed by the indexes, where a timer per token would hold 10,000 tasks."""
    memo.unsettled_sweep = asyncio.create_task(_sweep_unsettled(memo, logger))


@kopf.on.cleanup()
async def stop_unsettled_sweep(memo, **_) -> None:
    await end_task(memo, "unsettled_sweep")


async def _sweep_unsettled(memo, logger) -> None:
    """Only while this replica holds the lead and its indexes are current: a standby (paused
    by kopf's peering) receives no events, so its indexes are old, and a new leader first
    lists every kind again (handlers/_listings.py), so it never acts on objects deleted while
    it stood by."""
    pauses = 0
    while True:
        await asyncio.sleep(UNSETTLED_SWEEP)
        if not current(memo):
            continue  # a standby, or a replica whose listing is under way
        if memo.activity.pauses != pauses:
            pauses = memo.activity.pauses
            logger.info("indexes listed again after a pause: the sweep acts as the leader")
        for entry in memo.indexes.stale_unsettled(UNSETTLED_AFTER, UNSETTLED_LIMIT):
            if not current(memo):
                break
            kind = KINDS_BY_NAME[entry.kind]
            try:
                token = await asyncio.to_thread(_read, kind, entry, memo)
                memo.indexes.learn(entry, token)
                if token is None:
                    continue
                if token["metadata"].get("deletionTimestamp") or not waiting(token):
                    continue
                logger.info(f"{entry.kind} {entry.namespace}/{entry.name} sat unsettled: reconciling it")
                await asyncio.to_thread(reconcile_now, kind, token, memo, logger)
            except (kopf.TemporaryError, kopf.PermanentError) as exc:
                logger.info(f"{entry.kind} {entry.namespace}/{entry.name} is still unsettled: {exc}")
            except Exception as exc:  # noqa: BLE001  (the sweep outlives any one token)
                logger.warning(f"could not look at {entry.kind} {entry.namespace}/{entry.name} again: {exc!r}")


def _read(kind: Kind, entry, memo) -> dict | None:
    with kube_errors_to_kopf():
        return objects.get_object(memo.custom, kind.resource, entry.namespace, entry.name)
