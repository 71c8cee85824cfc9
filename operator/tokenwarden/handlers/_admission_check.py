"""Is admission enforced? Checked, not assumed: without it, any user who may create a
ServiceToken may grant any role (the grants are checked by admission only).

The check is what an attacker would try: a dry-run create of a ServiceToken naming a role that
is in no catalog, which only the admission webhook refuses (the schema cannot know the
catalog). The API server refusing it with the webhook's answer: enforced. Accepting it (no
webhook configured, the webhook down under failure policy Ignore, a namespace it does not
serve), or not answering: not enforced, said at WARNING with the consequence and the fix, and
``tokenwarden_admission_enforced 0``, which an alert of the chart watches. At start, then every
RECHECK seconds; while the operator starts (its own webhook may not be up yet), every EARLY
seconds, and nothing is said before GRACE seconds have passed.
"""
from __future__ import annotations

import asyncio

import kopf

from tokenwarden.handlers._memo import end_task
from tokenwarden.handlers._metrics import ADMISSION_ENFORCED
from tokenwarden.kube import ApiTransientError, objects
from tokenwarden.kube._resources import GROUP, SERVICE_TOKENS, VERSION

PROBE_ROLE = "tokenwarden-admission-probe"  # in no catalog: only admission refuses it
REFUSED_BY_ADMISSION = f"role {PROBE_ROLE} is not in the role catalog"
RECHECK = 300.0
EARLY = 5.0
GRACE = 20.0
CONSEQUENCE = "any user who may create a ServiceToken may grant any role, and an IngestionAPIKey any project"
FIX = ("serve the webhook (tokenwarden operator --webhook-port, as `tokenwarden demo` and the chart do) and "
       "keep its failurePolicy Fail (the chart's operator.webhook.failurePolicy)")


def probe_body() -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": SERVICE_TOKENS.kind,
            "metadata": {"generateName": "tokenwarden-admission-probe-"}, "spec": {"roles": [PROBE_ROLE]}}


def check(memo) -> tuple[bool, str]:
    """Enforced?, and what the API server answered."""
    namespace = memo.namespaces[0] if memo.namespaces else "default"
    try:
        refusal = objects.dry_run_create(memo.custom, SERVICE_TOKENS, namespace, probe_body())
    except ApiTransientError as exc:
        return False, f"the API server could not be asked ({exc})"
    if refusal is None:
        return False, f"a ServiceToken granting role {PROBE_ROLE!r}, in no catalog, was accepted (dry run, " \
                      f"namespace {namespace})"
    if REFUSED_BY_ADMISSION in refusal:
        return True, refusal
    return False, f"the dry run was refused, but not by admission: {refusal}"


@kopf.on.startup()
async def start_admission_check(memo, logger, **_) -> None:
    if not memo.serves_admission:
        logger.warning(f"this operator serves no admission webhook (no --webhook-port): unless another one "
                       f"serves it, {CONSEQUENCE}. Fix: {FIX}. Checking it now "
                       f"(metric tokenwarden_admission_enforced)")
    ADMISSION_ENFORCED.set(0)
    memo.admission_check = asyncio.create_task(_check_admission(memo, logger))


@kopf.on.cleanup()
async def stop_admission_check(memo, **_) -> None:
    await end_task(memo, "admission_check")


async def _check_admission(memo, logger) -> None:
    loop = asyncio.get_running_loop()
    started, was = loop.time(), None
    while True:
        enforced, answer = await asyncio.to_thread(check, memo)
        ADMISSION_ENFORCED.set(1 if enforced else 0)
        starting = loop.time() - started < GRACE
        if enforced:
            if was is not True:
                logger.info("admission is enforced: a ServiceToken granting a role in no catalog is refused")
        elif not starting:
            logger.warning(f"admission is NOT enforced: {answer}. So {CONSEQUENCE}. Fix: {FIX}")
        was = enforced
        await asyncio.sleep(EARLY if starting and not enforced else RECHECK)
