"""The import key, read by name: imported keys are found by their HMAC under it."""
from __future__ import annotations

import asyncio
import logging
import threading

from kubernetes import client

from tokenwarden.authn._index import TokenIndex
from tokenwarden.config import ImportKey
from tokenwarden.kube import ApiPermanentError, ApiTransientError, load_api_client
from tokenwarden.kube._import_key import ImportKeyInvalid, follow_import_key as follow, read_import_key

logger = logging.getLogger("tokenwarden.authenticator")
_tasks: set[asyncio.Task] = set()  # asyncio keeps weak references only


async def follow_import_key(config: ImportKey, index: TokenIndex, stop: asyncio.Event) -> None:
    """Read the key now (so readiness includes it when it exists), then keep it current from
    a watch of that one Secret in a thread, until ``stop``."""
    if not config.namespace:
        logger.warning("no namespace for the import key (importKey.namespace, or POD_NAMESPACE): "
                       "imported keys are not accepted")
        return
    core = client.CoreV1Api(load_api_client())
    try:
        index.import_key = await asyncio.to_thread(read_import_key, core, config.namespace, config.secret_name)
    except (ApiPermanentError, ApiTransientError, ImportKeyInvalid) as exc:
        logger.warning("cannot read the import key yet: %s", exc)
    if index.import_key is None:
        logger.info("no import key in Secret %s/%s yet: imported keys are accepted once the operator "
                    "creates it", config.namespace, config.secret_name)

    def use(key: bytes) -> None:
        if key != index.import_key:
            index.import_key = key
            logger.info("import key loaded from Secret %s/%s", config.namespace, config.secret_name)

    stopped = threading.Event()
    task = asyncio.get_running_loop().create_task(_set_when(stop, stopped))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    threading.Thread(target=follow, args=(core, config.namespace, config.secret_name, use, stopped),
                     name="import-key", daemon=True).start()


async def _set_when(stop: asyncio.Event, stopped: threading.Event) -> None:
    await stop.wait()
    stopped.set()
