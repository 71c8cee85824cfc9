"""What the test saw happen: every version of every token, key and Secret of the namespace,
followed by watches of its own that survive the faults (a 410 relists, as a Reflector does)."""
from __future__ import annotations

import base64
import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from kubernetes import client, watch

from ..kubehelpers import GROUP, VERSION

TOKEN_KINDS = {"ServiceToken": "servicetokens", "IngestionAPIKey": "ingestionapikeys"}


@dataclass
class SecretVersion:
    epoch: int  # which unbroken watch it came from: versions in one epoch miss nothing between them
    event: str
    token: str | None
    previous: str | None


@dataclass
class TokenVersion:
    epoch: int
    event: str
    resource_version: int
    phase: str | None
    token_hash: str | None


@dataclass
class Owned:
    """One credential object (by uid) and what the test saw of it."""

    kind: str
    name: str
    uid: str
    imported: bool = False
    versions: list[TokenVersion] = field(default_factory=list)
    secret_versions: list[SecretVersion] = field(default_factory=list)
    plaintexts: list[str] = field(default_factory=list)  # in memory only, never printed


def _decode(data: dict | None, key: str) -> str | None:
    value = (data or {}).get(key)
    return base64.b64decode(value).decode(errors="replace") if value is not None else None


def _controller(obj: dict) -> dict | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("apiVersion", "").startswith(f"{GROUP}/") \
                and ref.get("kind") in TOKEN_KINDS:
            return ref
    return None


class Recorder:
    """Watches Secrets, ServiceTokens and IngestionAPIKeys of one namespace in threads of
    their own until :meth:`stop`."""

    def __init__(self, kubeconfig, namespace: str) -> None:
        from tokenwarden import kube

        self.namespace = namespace
        self._api = lambda: kube.load_api_client(str(kubeconfig))
        self.lock = threading.Lock()
        self.owned: dict[str, Owned] = {}
        self.gone = 0  # 410s our own watches got: evidence that the watch-expiry fault is real
        self._epochs: dict[str, int] = defaultdict(int)
        self._stopped = threading.Event()
        self._threads = [threading.Thread(target=self._follow, args=(what,), daemon=True, name=f"record-{what}")
                         for what in ("Secret", *TOKEN_KINDS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopped.set()
        for thread in self._threads:
            thread.join(40)

    def _owned(self, kind: str, name: str, uid: str) -> Owned:
        if uid not in self.owned:
            self.owned[uid] = Owned(kind, name, uid)
        return self.owned[uid]

    def plaintexts(self) -> dict[str, Owned]:
        """Every token value seen in a Secret → the object it belonged to."""
        with self.lock:
            return {value: owned for owned in self.owned.values() for value in owned.plaintexts}

    # -- the watches ----------------------------------------------------------
    def _lister(self, what: str):
        api = self._api()
        if what == "Secret":
            core = client.CoreV1Api(api)
            return lambda **kw: core.list_namespaced_secret(self.namespace, **kw)
        custom = client.CustomObjectsApi(api)
        plural = TOKEN_KINDS[what]
        return lambda **kw: custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, **kw)

    def _follow(self, what: str) -> None:
        list_objects = self._lister(what)
        resource_version = None
        while not self._stopped.is_set():
            try:
                if resource_version is None:
                    response = list_objects(_preload_content=False, _request_timeout=15)
                    listing = json.loads(response.data)
                    with self.lock:
                        self._epochs[what] += 1
                        for item in listing["items"]:
                            item.setdefault("kind", what)
                            self._see(what, "LISTED", item)
                    resource_version = listing["metadata"]["resourceVersion"]
                stream = watch.Watch()
                for event in stream.stream(list_objects, resource_version=resource_version, timeout_seconds=10,
                                           allow_watch_bookmarks=True, _request_timeout=30):
                    obj = event["raw_object"]
                    resource_version = obj["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        obj.setdefault("kind", what)
                        with self.lock:
                            self._see(what, event["type"], obj)
                    if self._stopped.is_set():
                        stream.stop()
            except client.ApiException as exc:
                if exc.status == 410:
                    with self.lock:
                        self.gone += 1
                    resource_version = None  # relist: a new epoch
                else:
                    time.sleep(0.5)
            except Exception:  # the API server or etcd is down: resume from where we were
                time.sleep(0.5)

    def _see(self, what: str, event: str, obj: dict) -> None:
        epoch = self._epochs[what]
        meta = obj["metadata"]
        if what == "Secret":
            owner = _controller(obj)
            if owner is None:
                return
            owned = self._owned(owner["kind"], owner["name"], owner["uid"])
            token, previous = _decode(obj.get("data"), "token"), _decode(obj.get("data"), "token.previous")
            owned.secret_versions.append(SecretVersion(epoch, event, token, previous))
            for value in (token, previous):
                if value is not None and value not in owned.plaintexts:
                    owned.plaintexts.append(value)
            return
        owned = self._owned(what, meta["name"], meta["uid"])
        owned.imported = bool((obj.get("spec") or {}).get("import"))
        status = obj.get("status") or {}
        owned.versions.append(TokenVersion(epoch, event, int(meta["resourceVersion"]), status.get("phase"),
                                           status.get("tokenHash")))
