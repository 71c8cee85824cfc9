"""What kopf keeps per object between events, trimmed.

kopf keeps its live view of an object's body (``daemons_memory.live_fresh_body``) for every
object of a kind that has daemons, from its first event until it is deleted, whether or
not a daemon runs for it. Tokens have daemons (expiry, rotation, collection), so kopf held
the whole body of every token, idle or not. Here the view is let go after each event when
no daemon of the object is running: the next event builds a body again, as kopf does for
kinds without daemons. A daemon that runs keeps its live view.

These are kopf internals: :func:`install` refuses to start without them
(tests/unit/test_footprint.py pins them).
"""
from __future__ import annotations

from kopf._core.reactor import processing


def install() -> None:
    original = getattr(processing, "process_spawning_cause", None)
    if original is None:
        raise RuntimeError("this kopf version has no processing.process_spawning_cause: install a kopf "
                           "version this release supports")
    if getattr(original, "tokenwarden_footprint", False):
        return

    async def process_spawning_cause(*, memory, **kwargs):
        delays = await original(memory=memory, **kwargs)
        if not memory.daemons_memory.running_daemons:
            memory.daemons_memory.live_fresh_body = None
        return delays

    process_spawning_cause.tokenwarden_footprint = True
    processing.process_spawning_cause = process_spawning_cause
