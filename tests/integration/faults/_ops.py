"""Random operations on accounts, bindings, tokens, keys and imports, as users and GitOps
tools make them, and the faults mixed in: the operator killed, kube-apiserver and etcd
restarted, watches expired."""
from __future__ import annotations

import base64
import queue
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from kubernetes import client

from ..kubehelpers import GROUP, PLURALS, VERSION

ROTATE = "tokenwarden.io/rotate"
IMPORTABLE = "tokenwarden.io/importable"
CATALOG = ["reader", "writer", "power-user", "profile-writer", "admin"]
PROJECTS = ["shop", "lab"]
TIMEOUT = (3, 10)  # connect, read: an operation during an outage fails fast instead of hanging


class Down(Exception):
    """The API server did not answer (an outage): the operation did not count."""


@dataclass
class Outcome:
    ok: bool
    status: int = 200
    body: dict | None = None


@dataclass
class History:
    """What the operations did that the checks need to know."""

    # uids of tokens that were minted when their account was deleted: revoked for good, even
    # if an account of the same name comes back.
    revoked_with_account: dict[str, str] = field(default_factory=dict)  # uid → account
    import_values: dict[str, str] = field(default_factory=dict)  # value → source Secret (in memory only)
    rotation_requests: dict[tuple[str, str], str] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)
    # uids of Active tokens that took an edit the model refuses (admission was down): they stay Active.
    invalid_edits_admitted: list[str] = field(default_factory=list)


class Operations:
    """One random operation per :meth:`step`, drawn from ``rng``."""

    def __init__(self, rng: random.Random, custom: client.CustomObjectsApi, core: client.CoreV1Api,
                 namespace: str, seed: int, shared: Operations | None = None) -> None:
        """``shared``: another instance (in another thread) whose history and names this one shares."""
        self.rng, self.custom, self.core, self.namespace, self.seed = rng, custom, core, namespace, seed
        self.history = shared.history if shared else History()
        self.accounts = [f"acc-{i}" for i in range(4)]  # more than the quota of 3: some are refused
        self.bindings = [f"bind-{i}" for i in range(8)]
        self.tokens = [f"tok-{i}" for i in range(20)]  # names come back: a new uid under an old name
        self.keys = [f"key-{i}" for i in range(8)]
        self.imports = [f"imp-{i}" for i in range(6)]  # imp-i imports Secret src-i, or another's
        self._sequence = 0
        # names believed to exist
        self.live: dict[str, set[str]] = shared.live if shared else {kind: set() for kind in PLURALS}
        self._table = [
            (6, self.create_account), (3, self.delete_account), (4, self.toggle_account),
            (6, self.create_binding), (3, self.delete_binding), (3, self.edit_binding),
            (14, self.create_token), (9, self.delete_token), (4, self.edit_token), (5, self.request_rotation),
            (5, self.create_key), (3, self.delete_key),
            (3, self.write_source), (1, self.label_source), (4, self.create_import), (2, self.delete_import),
            (2, self.invalid_edit),
        ]

    def step(self, table=None) -> str:
        """Run one operation; raise :class:`Down` when the API server did not answer."""
        table = table or self._table
        operation = self.rng.choices([op for _, op in table], [w for w, _ in table])[0]
        outcome = operation()
        label = f"{operation.__name__}:{'ok' if outcome.ok else outcome.status}"
        self.history.counts[label] += 1
        return label

    def burst(self, count: int, deletions_only: bool = False) -> None:
        """A few operations at once, as they come before an outage or while a watch is broken:
        they are the changes a handler is in the middle of, or that a watch misses."""
        table = [(3, self.delete_token), (2, self.delete_key), (2, self.delete_binding),
                 (1, self.delete_account), (1, self.delete_import), (1, self.write_source)]
        if not deletions_only:
            table += [(3, self.request_rotation), (2, self.toggle_account), (2, self.edit_binding),
                      (2, self.create_token)]
        for _ in range(count):
            try:
                self.step(table)
            except Down:
                pass

    # -- API calls --------------------------------------------------------------
    def _call(self, fn, *args, **kwargs) -> Outcome:
        try:
            return Outcome(True, body=fn(*args, _request_timeout=TIMEOUT, **kwargs))
        except client.ApiException as exc:
            if exc.status in (0, 500, 502, 503, 504) and "webhook" not in str(exc.body):
                raise Down(str(exc.status)) from exc
            return Outcome(False, exc.status)
        except Exception as exc:  # connection refused or reset: an outage
            raise Down(type(exc).__name__) from exc

    def _create(self, kind: str, name: str, spec: dict) -> Outcome:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}
        outcome = self._call(self.custom.create_namespaced_custom_object, GROUP, VERSION, self.namespace,
                             PLURALS[kind], body)
        return self._learn(kind, name, outcome)

    def _patch(self, kind: str, name: str, patch: dict) -> Outcome:
        return self._learn(kind, name, self._call(self.custom.patch_namespaced_custom_object, GROUP, VERSION,
                                                  self.namespace, PLURALS[kind], name, patch))

    def _delete(self, kind: str, name: str) -> Outcome:
        outcome = self._call(self.custom.delete_namespaced_custom_object, GROUP, VERSION, self.namespace,
                             PLURALS[kind], name)
        if outcome.ok or outcome.status == 404:
            self.live[kind].discard(name)
        return outcome

    def _get(self, kind: str, name: str) -> dict | None:
        outcome = self._learn(kind, name, self._call(self.custom.get_namespaced_custom_object, GROUP, VERSION,
                                                     self.namespace, PLURALS[kind], name))
        return outcome.body if outcome.ok else None

    def _learn(self, kind: str, name: str, outcome: Outcome) -> Outcome:
        if outcome.status == 404:
            self.live[kind].discard(name)
        elif outcome.status == 409 or (outcome.ok and not outcome.body["metadata"].get("deletionTimestamp")):
            self.live[kind].add(name)
        return outcome

    def _list(self, kind: str) -> list[dict]:
        outcome = self._call(self.custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace,
                             PLURALS[kind])
        return outcome.body["items"] if outcome.ok else []

    def _pick(self, kind: str, names: list[str], existing: bool) -> str:
        """A name that exists (to edit or delete it) or does not (to create it), as far as the
        answers so far tell; any name when there is none such."""
        fitting = [n for n in names if (n in self.live[kind]) == existing]
        return self.rng.choice(fitting or names)

    def _account(self) -> str:
        """Mostly an account that exists (so its tokens mint), sometimes one that does not (yet)."""
        return self._pick("ServiceAccount", self.accounts, self.rng.random() < 0.85)

    def _roles(self, k_max: int = 2) -> list[str]:
        return sorted(self.rng.sample(CATALOG[:4], self.rng.randint(1, k_max)))

    def _lifetime(self) -> dict:
        """No expiry, a short ttl that ends during the run, a short ttl with rotation that
        rotates during the run, or a long one rotated only on request."""
        pick = self.rng.random()
        if pick < 0.35:
            return {}
        if pick < 0.6:
            return {"ttl": self.rng.choice(["30s", "45s", "60s", "90s"])}
        if pick < 0.85:
            return {"ttl": self.rng.choice(["40s", "60s"]), "rotation": {"renewBefore": self.rng.choice(["15s", "25s"])}}
        return {"ttl": "1h", "rotation": {"renewBefore": "10m"}}

    # -- accounts and bindings ----------------------------------------------------
    def create_account(self) -> Outcome:
        return self._create("ServiceAccount", self._pick("ServiceAccount", self.accounts, False),
                            {"description": f"account {self.rng.randint(0, 999)}",
                             "disabled": self.rng.random() < 0.2})

    def delete_account(self) -> Outcome:
        name = self._pick("ServiceAccount", self.accounts, True)
        outcome = self._delete("ServiceAccount", name)
        if outcome.ok:
            for token in self._retrying(lambda: self._list("ServiceToken")):
                if token["spec"].get("serviceAccountName") == name and (token.get("status") or {}).get("tokenHash"):
                    self.history.revoked_with_account[token["metadata"]["uid"]] = name
        return outcome

    @staticmethod
    def _retrying(read, attempts: int = 60):
        """A read that must not be lost to an outage that begins right after a write."""
        for _ in range(attempts - 1):
            try:
                return read()
            except Down:
                time.sleep(1)
        return read()

    def toggle_account(self) -> Outcome:
        return self._patch("ServiceAccount", self._pick("ServiceAccount", self.accounts, True),
                           {"spec": {"disabled": self.rng.random() < 0.4}})

    def create_binding(self) -> Outcome:
        spec = {"serviceAccountName": self._account(), "roles": self._roles()}
        if self.rng.random() < 0.3:
            spec["project"] = self.rng.choice(PROJECTS)
        return self._create("RoleBinding", self._pick("RoleBinding", self.bindings, False), spec)

    def delete_binding(self) -> Outcome:
        return self._delete("RoleBinding", self._pick("RoleBinding", self.bindings, True))

    def edit_binding(self) -> Outcome:
        spec: dict = {"roles": self._roles()}
        if self.rng.random() < 0.3:
            spec["project"] = self.rng.choice([*PROJECTS, None])
        return self._patch("RoleBinding", self._pick("RoleBinding", self.bindings, True), {"spec": spec})

    # -- tokens and keys --------------------------------------------------------------
    def create_token(self) -> Outcome:
        spec = {"description": f"token {self.rng.randint(0, 999)}", **self._lifetime()}
        if self.rng.random() < 0.5:
            spec["roles"] = self._roles()
        else:
            spec["serviceAccountName"] = self._account()
            if self.rng.random() < 0.4:
                spec["roles"] = ["reader"]
        return self._create("ServiceToken", self._pick("ServiceToken", self.tokens, False), spec)

    def delete_token(self) -> Outcome:
        return self._delete("ServiceToken", self._pick("ServiceToken", self.tokens, True))

    def edit_token(self) -> Outcome:
        name = self._pick("ServiceToken", self.tokens, True)
        token = self._get("ServiceToken", name)
        if token is None:
            return Outcome(False, 404)
        spec: dict = {"description": f"edited {self.rng.randint(0, 999)}"}
        if not token["spec"].get("serviceAccountName") and not token["spec"].get("import"):
            spec["roles"] = self._roles()
        return self._patch("ServiceToken", name, {"spec": spec})

    def request_rotation(self) -> Outcome:
        kind, names = self.rng.choice([("ServiceToken", self.tokens), ("IngestionAPIKey", self.keys)])
        name = self._pick(kind, names, True)
        self._sequence += 1
        request = f"request-{self._sequence}"
        outcome = self._patch(kind, name, {"metadata": {"annotations": {ROTATE: request}}})
        if outcome.ok:
            self.history.rotation_requests[(kind, name)] = request
        return outcome

    def create_key(self) -> Outcome:
        spec = {"description": f"key {self.rng.randint(0, 999)}", **self._lifetime()}
        if self.rng.random() < 0.3:
            spec["project"] = self.rng.choice(PROJECTS)
        return self._create("IngestionAPIKey", self._pick("IngestionAPIKey", self.keys, False), spec)

    def delete_key(self) -> Outcome:
        return self._delete("IngestionAPIKey", self._pick("IngestionAPIKey", self.keys, True))

    def invalid_edit(self) -> Outcome:
        """An edit the schema lets through and the model refuses: renewBefore not shorter than ttl."""
        with_ttl = [t for t in self._list("ServiceToken") + self._list("IngestionAPIKey")
                    if t["spec"].get("ttl") and not t["spec"].get("import")]
        if not with_ttl:
            return Outcome(False, 404)
        target = self.rng.choice(with_ttl)
        kind, name = target["kind"], target["metadata"]["name"]
        outcome = self._patch(kind, name, {"spec": {"rotation": {"renewBefore": target["spec"]["ttl"]}}})
        if outcome.ok and (target.get("status") or {}).get("phase") == "Active":
            self.history.invalid_edits_admitted.append(target["metadata"]["uid"])
        return outcome

    # -- imports ----------------------------------------------------------------------
    def write_source(self) -> Outcome:
        """Create a source Secret, or change its value as its owner rotates it."""
        index = self.rng.randrange(len(self.imports))
        name = f"src-{index}"
        value = f"imported-{self.seed}-{index}-{self.rng.getrandbits(64):016x}"
        self.history.import_values[value] = name
        data = {"token": base64.b64encode(value.encode()).decode()}
        labels = {IMPORTABLE: "true"} if self.rng.random() < 0.8 else {}
        outcome = self._call(self.core.patch_namespaced_secret, name, self.namespace, {"data": data})
        if outcome.status == 404:
            outcome = self._call(self.core.create_namespaced_secret, self.namespace, client.V1Secret(
                metadata=client.V1ObjectMeta(name=name, labels=labels), data=data))
        return outcome

    def label_source(self) -> Outcome:
        return self._call(self.core.patch_namespaced_secret, f"src-{self.rng.randrange(len(self.imports))}",
                          self.namespace, {"metadata": {"labels": {IMPORTABLE: "true"}}})

    def create_import(self) -> Outcome:
        index = self.imports.index(self._pick("ServiceToken", self.imports, False))
        # Mostly its own source; sometimes another token's, which makes a duplicate import.
        source = index if self.rng.random() < 0.75 else self.rng.randrange(len(self.imports))
        spec: dict = {"import": {"secretRef": {"name": f"src-{source}"}}}
        if self.rng.random() < 0.3:
            spec["serviceAccountName"] = self._account()
        else:
            spec["roles"] = self._roles()
        if self.rng.random() < 0.4:
            spec["secretName"] = f"imp-{index}-copy"
        return self._create("ServiceToken", self.imports[index], spec)

    def delete_import(self) -> Outcome:
        return self._delete("ServiceToken", self._pick("ServiceToken", self.imports, True))


FAULT_KINDS = ("kill-operator", "restart-apiserver", "restart-etcd", "expire-watches")


@dataclass
class FaultLog:
    kind: str
    started: float
    seconds: float
    error: str | None = None


class Faults:
    """Runs faults one after another in a thread of its own while operations go on."""

    def __init__(self, rng: random.Random, plane, operator, authenticator, burst: Operations) -> None:
        self.rng, self.plane, self.operator, self.authenticator, self.burst = \
            rng, plane, operator, authenticator, burst
        self.log: list[FaultLog] = []
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True, name="faults")
        self._thread.start()

    def plan(self, operations: int, count: int) -> list[tuple[int, str]]:
        """At which operation each fault starts: every kind at least once, spread over the run."""
        kinds = [*FAULT_KINDS, "kill-operator"] if count > len(FAULT_KINDS) else list(FAULT_KINDS)
        self.rng.shuffle(kinds)
        kinds += [self.rng.choice(FAULT_KINDS) for _ in range(count - len(kinds))]
        spacing = operations / (len(kinds) + 1)
        return [(int(spacing * (i + 1) + self.rng.uniform(-spacing / 3, spacing / 3)), kind)
                for i, kind in enumerate(kinds)]

    def inject(self, kind: str) -> None:
        self._queue.put(kind)

    def finish(self, timeout: float = 300) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (kind := self._queue.get()) is not None:
            started = time.monotonic()
            entry = FaultLog(kind, started, 0.0)
            try:
                self._one(kind)
            except Exception as exc:
                entry.error = f"{type(exc).__name__}: {exc}"[:500]
            entry.seconds = time.monotonic() - started
            self.log.append(entry)

    def _one(self, kind: str) -> None:
        if kind == "expire-watches":
            self._expire_watches()
            return
        self.burst.burst(self.rng.randint(2, 6))  # a fault strikes in the middle of work
        if kind == "kill-operator":
            self.operator.stop(kill=True)
            self.burst.burst(self.rng.randint(1, 4), deletions_only=True)  # the world moves on without it
            time.sleep(self.rng.uniform(1, 4))
            self.operator.start()
        elif kind == "restart-apiserver":
            self.plane.outage("kube-apiserver", self.rng.uniform(1, 4))
        else:
            self.plane.outage("etcd", self.rng.uniform(1, 4))

    def _expire_watches(self) -> None:
        """The operator and the authenticator frozen (as in a long pause or a partition) while
        kube-apiserver restarts, so their watches break unseen; objects deleted meanwhile; etcd
        compacted. Thawed, each watch resumes from a resourceVersion that is gone: 410, and a
        relist that must drop what it no longer lists."""
        frozen = [p.process for p in (self.operator, self.authenticator) if p.process.poll() is None]
        for process in frozen:
            process.send_signal(signal.SIGSTOP)
        try:
            self.plane.outage("kube-apiserver", self.rng.uniform(0.5, 2))
            self.burst.burst(self.rng.randint(3, 6), deletions_only=True)
            self.plane.compact_etcd()
        finally:
            for process in frozen:
                process.send_signal(signal.SIGCONT)
