"""The invariants, each violation one line that names the object (never a token value).

Two sorts: what the recorded history shows (it never heals: a token minted twice, a
revoked token revived, a hash that did not match its Secret while a client could look),
and what must hold once the system has settled (checked against the state read now).
"""
from __future__ import annotations

import base64
import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from kubernetes import client

from tokenwarden.tokens import hash_token, hmac_token

from ...conftest import OPERATOR_NAMESPACE
from ..kubehelpers import GROUP, VERSION
from ._ops import ROTATE, TIMEOUT
from ._record import TOKEN_KINDS, Owned, Recorder

TERMINAL = ("Revoked", "Expired")
MINTS = ("Minted", "SecretRecreated", "SecretTampered")  # every event that says a token was minted
# Near the instant a token expires or an overlap ends, either answer is right; the margin
# covers the time from reading the state to asking the authenticator.
MARGIN = timedelta(seconds=15)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _decode(secret: dict | None, key: str) -> str | None:
    value = ((secret or {}).get("data") or {}).get(key)
    return base64.b64decode(value).decode(errors="replace") if value is not None else None


@dataclass
class World:
    """The namespace as read at one moment."""

    now: datetime
    accounts: dict[str, dict]
    bindings: list[dict]
    objects: dict[str, dict]  # uid → ServiceToken or IngestionAPIKey
    secrets: dict[str, dict]
    import_key: bytes | None


def read_world(api: client.ApiClient, namespace: str) -> World:
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)

    def items(plural: str) -> list[dict]:
        return custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural,
                                                    _request_timeout=TIMEOUT)["items"]

    try:
        key_secret = core.read_namespaced_secret("tokenwarden-import-key", OPERATOR_NAMESPACE,
                                                 _request_timeout=TIMEOUT)
        import_key = base64.b64decode(key_secret.data["key"])
    except client.ApiException:
        import_key = None
    accounts = {a["metadata"]["name"]: a for a in items("serviceaccounts")}
    bindings = items("rolebindings")
    objects = {o["metadata"]["uid"]: o for plural in TOKEN_KINDS.values() for o in items(plural)}
    # Secrets after tokens: a rotation writes the Secret first, so a token read before its
    # Secret finds its hash there as token or token.previous.
    secrets = json.loads(core.list_namespaced_secret(namespace, _preload_content=False,
                                                     _request_timeout=TIMEOUT).data)["items"]
    return World(now=datetime.now(timezone.utc), accounts=accounts, bindings=bindings, objects=objects,
                 secrets={s["metadata"]["name"]: s for s in secrets}, import_key=import_key)


def _name(obj: dict) -> str:
    return f"{obj['kind']} {obj['metadata']['name']} (uid {obj['metadata']['uid'][:8]})"


def _account_problem(obj: dict, world: World, revoked_with_account: dict[str, str]) -> str | None:
    """Why a ServiceToken's account does not let it verify, or None."""
    account_name = obj["spec"].get("serviceAccountName")
    if obj["kind"] != "ServiceToken" or not account_name:
        return None
    if obj["metadata"]["uid"] in revoked_with_account:
        return f"its account {account_name} was deleted while it was minted"
    account = world.accounts.get(account_name)
    if account is None:
        return f"its account {account_name} does not exist"
    if account["metadata"].get("deletionTimestamp"):
        return f"its account {account_name} is being deleted"
    bound = (obj.get("status") or {}).get("accountUID")
    if bound and bound != account["metadata"]["uid"]:
        return f"its account {account_name} was re-created (uid {bound[:8]} is gone)"
    return None


@dataclass
class Expectation:
    verifies: bool | None  # None: too close to an expiry or the end of an overlap to say
    holder: dict | None


def expectations(world: World, revoked_with_account: dict[str, str]) -> dict[str, Expectation]:
    """token hash → whether the authenticator must accept it now, and which object holds it."""
    expected: dict[str, Expectation] = {}

    def hold(token_hash: str | None, until: datetime | None, obj: dict) -> None:
        if not token_hash:
            return
        if until is not None and abs(until - world.now) < MARGIN:
            verdict = None
        elif until is None or until > world.now:
            verdict = True
        else:
            return
        if token_hash not in expected or verdict:  # one certain holder is enough
            expected[token_hash] = Expectation(verdict, obj)

    for obj in world.objects.values():
        status = obj.get("status") or {}
        if status.get("phase") != "Active" or obj["metadata"].get("deletionTimestamp"):
            continue
        if _account_problem(obj, world, revoked_with_account):
            continue
        account = world.accounts.get(obj["spec"].get("serviceAccountName") or "")
        if account is not None and account["spec"].get("disabled"):
            continue
        expires = _time(status.get("expiresAt"))
        hold(status.get("tokenHash"), expires, obj)
        until = _time(status.get("previousValidUntil"))
        if until is not None and expires is not None:
            until = min(until, expires)
        if status.get("previousTokenHash") and until is not None:
            hold(status["previousTokenHash"], until, obj)
    return expected


def _hashes(value: str, import_key: bytes | None) -> list[str]:
    return [hash_token(value)] + ([hmac_token(value, import_key)] if import_key else [])


def _granted(obj: dict, world: World) -> set[str] | None:
    """Roles the object may carry now (role or role@project), None when it carries none by design."""
    if obj["kind"] != "ServiceToken":
        return None
    account = obj["spec"].get("serviceAccountName")
    if not account:
        return set(obj["spec"].get("roles") or [])
    granted = set()
    for binding in world.bindings:
        if binding["spec"].get("serviceAccountName") == account and not binding["metadata"].get("deletionTimestamp"):
            project = binding["spec"].get("project")
            granted |= {f"{r}@{project}" if project else r for r in binding["spec"]["roles"]}
    return granted


def verification_violations(world: World, recorder: Recorder, import_values: dict[str, str],
                            revoked_with_account: dict[str, str], authenticator,
                            roles: bool = True) -> tuple[list[str], Counter]:
    """Ask the authenticator about every token value ever seen; also how many of each sort
    were asked about. ``roles``: also check that no role outlives the binding or spec that
    granted it (the operator's work: not while it is down)."""
    expected = expectations(world, revoked_with_account)
    seen = recorder.plaintexts()
    values = list(seen) + [v for v in import_values if v not in seen]
    violations, asked = [], Counter()
    for value in values:
        found = next((expected[h] for h in _hashes(value, world.import_key) if h in expected), None)
        owner = seen.get(value)
        if found is not None and found.verifies is None:
            asked["near an expiry, not asked"] += 1
            continue
        asked["valid" if found else "of a deleted object" if owner and owner.uid not in world.objects
              else "revoked, expired, rotated out or not imported"] += 1
        where = (f"{owner.kind} {owner.name} (uid {owner.uid[:8]})" if owner
                 else f"the key imported from Secret {import_values[value]}")
        response = authenticator.get("/verify", {"X-API-Key": value})
        if response.status_code == 503:
            violations.append(f"unready: the authenticator answers 503 for a token of {where}")
        elif found is None and response.status_code == 200:
            gone = owner is not None and owner.uid not in world.objects
            kind = "deleted-verifies" if gone else "revoked-verifies"
            violations.append(f"{kind}: a token of {where} is accepted; "
                              f"{'the object is deleted' if gone else 'nothing live holds it'}")
        elif found is not None and response.status_code != 200:
            violations.append(f"active-refused: {_name(found.holder)} is Active and its token is refused "
                              f"({response.status_code})")
        elif found is not None and roles:
            granted = _granted(found.holder, world)
            carried = {r for r in response.headers.get("X-Auth-Roles", "").split(",") if r}
            stale = {r for r in carried if r not in granted and r.split("@")[0] not in granted} \
                if granted is not None else set()
            if stale:
                violations.append(f"stale-roles: {_name(found.holder)} carries {sorted(stale)} that no live "
                                  f"binding or spec grants")
    return violations, asked


def _edit_refused(obj: dict) -> bool:
    """An Active token's edit that the model refused (admission was down): observedGeneration
    stays at the last spec applied, and Ready says so for the current generation."""
    ready = next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), {})
    return ready.get("reason") == "InvalidSpec" and ready.get("observedGeneration") == obj["metadata"].get("generation")


def state_violations(world: World, revoked_with_account: dict[str, str], invalid_edits: list[str],
                     max_tokens: int) -> list[str]:
    """What must hold of the objects and Secrets once the system has settled."""
    violations = []
    for uid in dict.fromkeys(invalid_edits):
        obj = world.objects.get(uid)
        if obj is not None and (obj.get("status") or {}).get("phase") == "Failed":
            violations.append(f"invalid-edit: {_name(obj)} was Active and went Failed after an edit the model "
                              "refuses (admission was down); it must stay Active and say the edit was not applied")
    for obj in world.objects.values():
        status, meta = obj.get("status") or {}, obj["metadata"]
        phase = status.get("phase")
        name = _name(obj)
        if meta.get("deletionTimestamp"):
            continue
        if phase is None:
            violations.append(f"unsettled: {name} has no phase")
            continue
        if phase not in TERMINAL and status.get("observedGeneration") != meta.get("generation") and \
                not _edit_refused(obj):
            violations.append(f"unsettled: {name} observed generation {status.get('observedGeneration')} "
                              f"of {meta.get('generation')}")
        reason = next((c.get("reason") for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
        if phase == "Active":
            problem = _account_problem(obj, world, revoked_with_account)
            if problem:
                violations.append(f"revived: {name} is Active though {problem}")
            expires = _time(status.get("expiresAt"))
            if expires is not None and expires < world.now - 2 * MARGIN:
                violations.append(f"unsettled: {name} is Active {world.now - expires} after it expired")
            request = (meta.get("annotations") or {}).get(ROTATE)
            if request and status.get("rotationRequest") != request:
                violations.append(f"lost-action: {name} rotation request {request!r} not acted on "
                                  f"(last acted on {status.get('rotationRequest')!r})")
            violations += _hash_violations(obj, world)
        if reason == "SecretConflict":
            secret = world.secrets.get(obj["spec"].get("secretName") or meta["name"])
            owner = _owner_uid(secret) if secret else None
            if secret is None or (owner and owner not in world.objects):
                violations.append(f"stuck: {name} is {phase} for SecretConflict, and the conflicting Secret "
                                  f"{'is gone' if secret is None else 'belongs to a deleted token'}")
        if reason == "QuotaExceeded":
            account = obj["spec"].get("serviceAccountName")
            holding = [o for o in world.objects.values() if o is not obj and o["kind"] == "ServiceToken"
                       and o["spec"].get("serviceAccountName") == account
                       and (o.get("status") or {}).get("phase") in ("Active", "Pending", None)
                       and _ready_reason(o) != "QuotaExceeded"]
            if len(holding) < max_tokens:
                violations.append(f"stuck: {name} is {phase} for QuotaExceeded, and account {account} holds "
                                  f"{len(holding)} of {max_tokens} places")
    return violations + orphan_violations(world)


def orphan_violations(world: World) -> list[str]:
    """No Secret is left owned by a token that does not exist (the garbage collector's work,
    with or without the operator)."""
    violations = []
    for secret in world.secrets.values():
        owner = _owner_uid(secret)
        if owner and owner not in world.objects:
            violations.append(f"orphan: Secret {secret['metadata']['name']} is owned by uid {owner[:8]}, "
                              "which does not exist")
    return violations


def _ready_reason(obj: dict) -> str | None:
    return next((c.get("reason") for c in (obj.get("status") or {}).get("conditions") or []
                 if c.get("type") == "Ready"), None)


def _owner_uid(secret: dict) -> str | None:
    for ref in secret["metadata"].get("ownerReferences") or []:
        if ref.get("apiVersion", "").startswith(f"{GROUP}/") and ref.get("kind") in TOKEN_KINDS:
            return ref["uid"]
    return None


def _hash_violations(obj: dict, world: World) -> list[str]:
    """An Active token's hash matches the token in its Secret (or the previous one, in an
    overlap); an imported key's matches its source's current value."""
    status, spec = obj["status"], obj["spec"]
    expires = _time(status.get("expiresAt"))
    if expires is not None and expires < world.now + MARGIN:
        return []  # the expiry removes the Secret
    imported = spec.get("import")
    if imported:
        if world.import_key is None:
            return []
        source = world.secrets.get(imported["secretRef"]["name"])
        value = _decode(source, imported["secretRef"].get("key", "token"))
        labels = (source or {}).get("metadata", {}).get("labels") or {}
        if value is None or labels.get("tokenwarden.io/importable") != "true":
            return []  # a key whose source is gone or closed stays as it was
        if status.get("tokenHash") != hmac_token(value.strip(), world.import_key):
            return [f"import-stale: {_name(obj)} keeps a hash that is not its source's current value"]
        return []
    secret = world.secrets.get(status.get("secretName") or "")
    if secret is None:
        return [f"hash: {_name(obj)} is Active and its Secret {status.get('secretName')!r} does not exist"]
    values = [_decode(secret, "token"), _decode(secret, "token.previous")]
    if status.get("tokenHash") not in [hash_token(v) for v in values if v is not None]:
        return [f"hash: {_name(obj)} status.tokenHash matches neither token nor token.previous in its Secret"]
    return []


def sandwich_check(api: client.ApiClient, namespace: str, kind: str, name: str) -> tuple[bool, str | None]:
    """Mid-run: an Active token's hash against its Secret, read between two reads of the
    token that show the same resourceVersion (so nothing moved meanwhile). Whether it could be
    judged (an Active minted token, a still moment), and the violation if any."""
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    plural = TOKEN_KINDS[kind]
    before = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, _request_timeout=TIMEOUT)
    status = before.get("status") or {}
    expires = _time(status.get("expiresAt"))
    if status.get("phase") != "Active" or before["spec"].get("import") or \
            (expires is not None and expires < datetime.now(timezone.utc) + MARGIN):
        return False, None
    if not status.get("secretName"):
        return True, f"hash (mid-run): {_name(before)} is Active with no status.secretName"
    try:
        secret = core.read_namespaced_secret(status["secretName"], namespace, _request_timeout=TIMEOUT)
        data = {k: base64.b64decode(v).decode(errors="replace") for k, v in (secret.data or {}).items()}
    except client.ApiException as exc:
        if exc.status != 404:
            return False, None
        data = None
    after = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, _request_timeout=TIMEOUT)
    if after["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]:
        return False, None
    if data is None:
        return True, f"hash (mid-run): {_name(before)} is Active and its Secret does not exist"
    if status.get("tokenHash") not in [hash_token(data[k]) for k in ("token", "token.previous") if k in data]:
        return True, f"hash (mid-run): {_name(before)} status.tokenHash matches neither token nor token.previous"
    return True, None


def history_violations(recorder: Recorder, mint_events: dict[str, int]) -> tuple[list[str], int]:
    """What the recorded history shows; also how many token changes could not be judged
    because the test's own watch missed versions (a 410) in between."""
    violations, unjudged = [], 0
    with recorder.lock:
        owned = list(recorder.owned.values())
    for item in owned:
        label = f"{item.kind} {item.name} (uid {item.uid[:8]})"
        if mint_events.get(item.uid, 0) > 1:
            violations.append(f"minted-twice: {label} has {mint_events[item.uid]} mint events")
        if not item.imported:
            found, count = _remints(item)
            unjudged += count
            violations += [f"minted-twice: {label} {what}" for what in found]
        ordered = sorted(item.versions, key=lambda v: v.resource_version)
        ended = next((v for v in ordered if v.phase in TERMINAL), None)
        if ended is not None:
            later = [v for v in ordered if v.resource_version > ended.resource_version and v.phase in ("Active", "Pending")]
            if later:
                violations.append(f"revived: {label} went {ended.phase} → {later[0].phase}")
    return violations, unjudged


def _remints(item: Owned) -> tuple[list[str], int]:
    """Changes of the Secret's token that are no rotation: the new value did not arrive with
    the old one kept as token.previous. A rotation's successor that no status ever named (the
    status write failed) never verified: minted again beside the same kept token, it is no
    re-mint of a token in use."""
    found, unjudged = [], 0
    recorded = {v.token_hash for v in item.versions if v.token_hash}
    last, last_previous, last_epoch, values = None, None, None, []
    for version in item.secret_versions:
        if version.event == "DELETED" or version.token is None:
            continue
        if last is not None and version.token != last:
            rotated = version.previous == last or (
                version.previous is not None and version.previous == last_previous
                and hash_token(last) not in recorded)
            if not rotated and version.epoch != last_epoch:
                if version.previous not in values:
                    unjudged += 1
            elif not rotated:
                found.append("was re-minted: its Secret's token changed without the old one kept as token.previous")
        if version.token not in values:
            values.append(version.token)
        last, last_previous, last_epoch = version.token, version.previous, version.epoch
    return found, unjudged


def mint_events(core: client.CoreV1Api, namespace: str) -> dict[str, int]:
    """How many mint events each object (by uid) has."""
    counts: dict[str, int] = {}
    for reason in MINTS:
        for event in core.list_namespaced_event(namespace, field_selector=f"reason={reason}",
                                                _request_timeout=TIMEOUT).items:
            uid = event.involved_object.uid
            counts[uid] = counts.get(uid, 0) + (event.count or 1)
    return counts
