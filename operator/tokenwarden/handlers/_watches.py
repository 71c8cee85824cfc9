"""What the operator follows beyond kopf's watches, each narrowed by the API server.

kopf selects one set of objects per kind, and its Secret watch selects token Secrets
(handlers/_run.py). The other Secrets the operator follows need selectors of their own, so
each has a reflector (kube/_reflector.py) in a thread, which keeps names and versions only:

- import sources: Secrets labelled ``tokenwarden.io/importable=true``, metadata only (the
  key is read by name when its token is reconciled); after each listing, a source that
  tokens import and that the listing lacks is read by name, so that one deleted while no
  watch ran (the operator down) is reported as one deleted under the watch;
- the bootstrap Secret and the import key's Secret: each by its name (a field selector);
- Kubernetes ServiceAccounts, which accounts name as workload identities: metadata only,
  and only those some account names are kept.

A Secret that must be read but carries none of these (an import source not labelled yet) is
read by name when needed, never watched. As kopf's watches do, these run only while this
replica leads (a standby paused by peering watches and acts on nothing), and start once every kind
of the indexes is listed, so that what they find is matched against complete indexes.
"""
from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Hashable

import kopf
from kubernetes import client

from tokenwarden.handlers._bootstrap import bootstrap_listed, bootstrap_secret
from tokenwarden.handlers._import_sources import key_secret_changed, source_changed, sources_listed
from tokenwarden.handlers._listings import current, leading
from tokenwarden.handlers._memo import end_task
from tokenwarden.handlers._workloads import service_account_changed
from tokenwarden.kube import load_api_client, objects
from tokenwarden.kube._reflector import Reflector
from tokenwarden.kube._watching import Selection, list_selected_page, open_selected_watch
from tokenwarden.policies import IMPORTABLE_LABEL

LEAD_CHECK = 1.0  # seconds between looks at whether this replica leads (kopf's peering)
Key = tuple[str, str]  # (namespace, name)
# changed(type, (namespace, name), body or None): ADDED, MODIFIED or DELETED
Changed = Callable[[str, Key, "dict | None"], None]
# listed(keys held or dropped): a listing is complete (kube/_reflector.py)
Listed = Callable[[set[Key]], None]


class Followed:
    """A reflector's store that keeps each object's resourceVersion and hands every change to
    ``changed`` (on the event loop). ``keep`` says which objects are kept at all: the others
    are announced as they come, and forgotten. The body is handed on only ``with_body``: a
    listing's pages wait for the event loop as records, and 10,000 bodies would be megabytes."""

    def __init__(self, changed: Changed, keep: Callable[[Key], bool] = lambda _: True,
                 with_body: bool = False) -> None:
        self.changed, self.keep, self.with_body = changed, keep, with_body
        self.versions: dict[Hashable, str] = {}

    def record(self, body: dict):
        meta = body.get("metadata") or {}
        return (meta.get("namespace"), meta.get("name")), (meta.get("resourceVersion"),
                                                            body if self.with_body else None)

    def put(self, key: Key, record) -> None:
        version, body = record
        known = self.versions.get(key)
        if known == version:
            return  # a listing again brings what is known
        if self.keep(key):
            self.versions[key] = version
        else:
            self.versions.pop(key, None)
        self.changed("ADDED" if known is None else "MODIFIED", key, body)

    def drop(self, key: Key) -> None:
        self.versions.pop(key, None)
        self.changed("DELETED", key, None)

    def keys(self):
        return list(self.versions)


def _selections(memo) -> list[tuple[Selection, Changed, Listed | None]]:
    """What to follow, what to do on a change, and what to do once a listing is complete."""
    logger = memo.work_logger
    follow: list[tuple[Selection, Changed, Listed | None]] = []
    bootstrap = memo.settings.bootstrap
    # Imported, but followed by name, not by the label: never in the import sources' listings.
    by_name = {(bootstrap.namespace, bootstrap.secret_name)} if bootstrap.namespace else set()
    for scope in objects.listing_scopes(memo.namespaces):
        follow.append((Selection("secrets", scope, label_selector=f"{IMPORTABLE_LABEL}=true", metadata_only=True),
                       lambda type, key, _: source_changed(type, *key, memo, logger),
                       functools.partial(sources_listed, scope, skip=by_name, memo=memo, logger=logger)))
        follow.append((Selection("serviceaccounts", scope, metadata_only=True),
                       lambda type, key, _: service_account_changed(type, *key, memo), None))
    if bootstrap.namespace:
        def bootstrap_changed(type, key, body):
            bootstrap_secret(type, body, memo, logger)
            source_changed(type, *key, memo, logger)  # the bootstrap token imports it

        by_its_name = f"metadata.name={bootstrap.secret_name}"
        follow.append((Selection("secrets", bootstrap.namespace, field_selector=by_its_name, metadata_only=True),
                       bootstrap_changed, lambda keys: bootstrap_listed(keys, memo, logger)))
    key = memo.settings.import_key
    if key.namespace:
        follow.append((Selection("secrets", key.namespace, field_selector=f"metadata.name={key.secret_name}"),
                       lambda type, _, body: memo.work.submit(("import-key",), key_secret_changed, type, body,
                                                              memo, logger), None))
    return follow


def _listed_workload(memo) -> Callable[[Key], bool]:
    return lambda key: bool(memo.workload_listings.listing(*key))


class Watches:
    """The operator's own reflectors, each in a thread with a connection of its own, running
    while this replica leads: a replica that takes the lead starts them afresh, so their first
    listing brings everything as kopf's listing on resuming does. What they see is handled on
    the event loop; the events of the work it calls for are posted by handlers/_events.py."""

    def __init__(self, memo) -> None:
        self.memo = memo
        self.selections = _selections(memo)
        self.core = client.CoreV1Api(load_api_client(pool_size=2 * len(self.selections)))
        self.stop: threading.Event | None = None
        self.reflectors: list[Reflector] = []

    @property
    def running(self) -> bool:
        return self.stop is not None

    def start(self, deliver: Callable[..., None]) -> None:
        stop = self.stop = threading.Event()
        self.reflectors = []
        for selection, changed, listed in self.selections:
            keep = _listed_workload(self.memo) if selection.plural == "serviceaccounts" else (lambda _: True)
            # Bodies for the two Secrets followed by name only: the bootstrap Secret's annotations, the key.
            store = Followed(self._while_running(stop, changed), keep, with_body=selection.field_selector is not None)
            reflector = Reflector(selection.what, store,
                                  functools.partial(list_selected_page, self.core, selection),
                                  functools.partial(open_selected_watch, self.core, selection),
                                  stop=stop, deliver=deliver,
                                  listed=self._listed(stop, listed) if listed else lambda *_: None)
            self.reflectors.append(reflector)
            threading.Thread(target=reflector.run, name=f"follow-{selection.what}", daemon=True).start()

    def halt(self) -> None:
        if self.stop is not None:
            self.stop.set()
        self.stop = None

    def _while_running(self, stop: threading.Event, changed: Callable[..., None]) -> Callable[..., None]:
        """A watch ends at its next event once stopped: what it brings until then is dropped."""
        def deliver(*args):
            if not stop.is_set() and leading(self.memo):
                changed(*args)
        return deliver

    def _listed(self, stop: threading.Event, listed: Listed) -> Callable[[set, list], None]:
        return self._while_running(stop, lambda held, dropped: listed(held.union(dropped)))


async def _follow_the_lead(memo, watches: Watches) -> None:
    deliver = asyncio.get_running_loop().call_soon_threadsafe
    while True:
        if not watches.running and current(memo):  # what they find is matched against complete indexes
            watches.start(deliver)
        elif watches.running and not leading(memo):
            watches.halt()
        await asyncio.sleep(LEAD_CHECK)


@kopf.on.startup()
async def start_watches(memo, **_) -> None:
    memo.watches = Watches(memo)
    memo.watches_task = asyncio.create_task(_follow_the_lead(memo, memo.watches))


@kopf.on.cleanup()
async def stop_watches(memo, **_) -> None:
    await end_task(memo, "watches_task")
    if getattr(memo, "watches", None) is not None:
        memo.watches.halt()
