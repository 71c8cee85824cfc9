"""The operator's own certificates, made and renewed at run time (never by the chart at render
time, so a render depends on the values alone): for each server set to ``generate``, a CA
Secret and a serving-certificate Secret signed by it; the webhook's CA bundle injected into
its ValidatingWebhookConfiguration, the authenticator's published in a ConfigMap.

Every replica looks, at start and every ``checkInterval``: the decisions are pure
(policies/_certificates.py) and every write is conditional (kube/_certificates.py), so two
replicas never fight and a standby needs no lead to keep certificates valid.

The webhook is served from its Secret as read through the API, not from a mounted volume:
the operator makes that Secret itself, and a pod cannot mount a Secret that does not exist
yet. Every replica follows the Secret with a watch, writes the pair into its own certificate
folder and hands new handshakes the new certificate without restarting the server.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import tempfile
import threading
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import kopf
from kubernetes import client

from tokenwarden import clock, policies
from tokenwarden.config import Certificates, ServerCertificate
from tokenwarden.handlers._admission_server import AdmissionServer, admission_server
from tokenwarden.handlers._memo import end_task
from tokenwarden.kube import ApiPermanentError, ApiTransientError
from tokenwarden.kube._certificates import (
    StoredSecret,
    follow_secret,
    inject_ca_bundle,
    publish_config_map,
    read_secret,
    write_secret,
)
from tokenwarden.policies._certificates import (
    CREATE,
    INTRODUCE,
    RETIRE,
    RETIRE_AT_ANNOTATION,
    ROTATE_CA_ANNOTATION,
    SWITCH,
    SWITCH_AT_ANNOTATION,
    Authority,
    ServingCert,
    authority_step,
    serving_renewal,
    trust_bundle,
)
from tokenwarden.servingtls import ReloadingCertificate
from tokenwarden.tls import PemPair, facts_of, matching_key, new_ca, new_serving_cert, signed_by

TLS_SECRET = "kubernetes.io/tls"
CERT, KEY, BUNDLE = "tls.crt", "tls.key", "ca.crt"
NEXT_CERT, NEXT_KEY, PREVIOUS_CERT = "next.crt", "next.key", "previous.crt"
STEPS_PER_LOOK = 4  # a CA step and a serving certificate, with room for a lost race or two


def _facts(pem: bytes | None):
    try:
        return facts_of(pem) if pem else None
    except ValueError:
        return None


def _pair(data: Mapping[str, bytes], cert: str, key: str) -> PemPair | None:
    if data.get(cert) and data.get(key) and matching_key(data[cert], data[key]):
        return PemPair(data[cert], data[key])
    return None


def _time(annotations: Mapping[str, str], name: str) -> datetime | None:
    try:
        return policies.parse_time(annotations.get(name))
    except ValueError:
        return None  # a hand-edited value: the step is due now


def authority_of(secret: StoredSecret | None) -> Authority | None:
    """The CA Secret as the decisions see it; None when it holds no usable CA."""
    if secret is None or _pair(secret.data, CERT, KEY) is None:
        return None
    data, annotations = secret.data, secret.annotations
    introduced = _facts(data.get(NEXT_CERT)) if _pair(data, NEXT_CERT, NEXT_KEY) else None
    return Authority(signing=facts_of(data[CERT]), introduced=introduced,
                     switch_at=_time(annotations, SWITCH_AT_ANNOTATION),
                     retired=bool(data.get(PREVIOUS_CERT)), retire_at=_time(annotations, RETIRE_AT_ANNOTATION),
                     rotation_requested=bool(annotations.get(ROTATE_CA_ANNOTATION)))


def _next_ca(step: str, secret: StoredSecret | None, common_name: str, config: Certificates,
             now: datetime) -> tuple[dict[str, bytes], dict[str, str]]:
    """The CA Secret's data and annotations after ``step``."""
    data = dict(secret.data) if secret else {}
    annotations = {k: v for k, v in (secret.annotations if secret else {}).items()
                   if k not in (SWITCH_AT_ANNOTATION, RETIRE_AT_ANNOTATION)}
    until = (now + config.ca_rotation_overlap).strftime("%Y-%m-%dT%H:%M:%SZ")
    if step == CREATE:
        fresh = new_ca(common_name, config.ca_lifetime, now)
        data = {CERT: fresh.cert, KEY: fresh.key}
    elif step == INTRODUCE:
        fresh = new_ca(common_name, config.ca_lifetime, now)
        data.update({NEXT_CERT: fresh.cert, NEXT_KEY: fresh.key})
        annotations.pop(ROTATE_CA_ANNOTATION, None)
        annotations[SWITCH_AT_ANNOTATION] = until
    elif step == SWITCH:
        data = {CERT: data[NEXT_CERT], KEY: data[NEXT_KEY], PREVIOUS_CERT: data[CERT]}
        annotations[RETIRE_AT_ANNOTATION] = until
    elif step == RETIRE:
        data.pop(PREVIOUS_CERT, None)
    data[BUNDLE] = trust_bundle(data.get(CERT), data.get(NEXT_CERT), data.get(PREVIOUS_CERT))
    return data, annotations


def keep_authority(core: client.CoreV1Api, namespace: str, server: ServerCertificate, config: Certificates,
                   logger) -> StoredSecret:
    """The server's CA Secret, made or moved on a step when one is due."""
    for _ in range(STEPS_PER_LOOK):
        found = read_secret(core, namespace, server.ca_secret_name)
        now = clock.now()
        step = authority_step(authority_of(found), now=now, renew_before=config.ca_lifetime / 3,
                              overlap=config.ca_rotation_overlap)
        if step is None:
            return found
        data, annotations = _next_ca(step.action, found, server.ca_secret_name, config, now)
        if write_secret(core, namespace, server.ca_secret_name, data, annotations=annotations,
                        component="certificate-authority", secret_type="Opaque", found=found):
            logger.info(f"CA Secret {namespace}/{server.ca_secret_name}: {step.action} ({step.reason}): {step.message}")
    raise ApiTransientError(f"the CA Secret {namespace}/{server.ca_secret_name} kept changing under this replica")


def keep_serving(core: client.CoreV1Api, namespace: str, server: ServerCertificate, config: Certificates,
                 authority: StoredSecret, logger) -> None:
    """The server's serving Secret: a certificate signed by the CA that signs now, renewed when
    due, with the CA bundle clients trust beside it."""
    signing = PemPair(authority.data[CERT], authority.data[KEY])
    bundle = authority.data[BUNDLE]
    for _ in range(STEPS_PER_LOOK):
        found = read_secret(core, namespace, server.secret_name)
        data = found.data if found else {}
        facts = _facts(data.get(CERT))
        cert = ServingCert(facts, key_matches=_pair(data, CERT, KEY) is not None,
                           signed_by_signing_ca=signed_by(data[CERT], signing.cert)) if facts else None
        now = clock.now()
        step = serving_renewal(cert, names=frozenset(server.names), now=now, lifetime=config.serving_lifetime,
                               renew_before=config.serving_renew_before)
        if step is None and data.get(BUNDLE) == bundle:
            return
        pair = new_serving_cert(signing, server.names, config.serving_lifetime, now) if step else \
            PemPair(data[CERT], data[KEY])
        if write_secret(core, namespace, server.secret_name, {CERT: pair.cert, KEY: pair.key, BUNDLE: bundle},
                        annotations={}, component="serving-certificate", secret_type=TLS_SECRET, found=found):
            if step:
                logger.info(f"serving certificate {namespace}/{server.secret_name} issued ({step.reason}): "
                            f"{step.message}; valid until {facts_of(pair.cert).not_after.isoformat()}")
            else:
                logger.info(f"serving certificate {namespace}/{server.secret_name}: the CA bundle changed")
    raise ApiTransientError(f"the Secret {namespace}/{server.secret_name} kept changing under this replica")


def keep_certificates(memo, logger) -> None:
    """One look at every certificate this operator keeps; what cannot be done now is logged and
    tried again at the next look."""
    config: Certificates = memo.settings.certificates
    namespace = config.namespace
    for name, server in (("webhook", config.webhook), ("authenticator", config.authenticator)):
        try:
            bundle = None
            if server.generate:
                authority = keep_authority(memo.core, namespace, server, config, logger)
                keep_serving(memo.core, namespace, server, config, authority, logger)
                bundle = authority.data[BUNDLE]
            if name == "webhook" and server.configuration:
                bundle = bundle or _bundle_of(memo.core, namespace, server, logger)
                if bundle:
                    admission = client.AdmissionregistrationV1Api(memo.core.api_client)
                    if inject_ca_bundle(admission, server.configuration, bundle):
                        logger.info(f"CA bundle injected into ValidatingWebhookConfiguration {server.configuration}")
            if name == "authenticator" and server.generate and server.ca_config_map:
                if publish_config_map(memo.core, namespace, server.ca_config_map, {BUNDLE: bundle.decode()},
                                      component="certificate-authority"):
                    logger.info(f"the authenticator's CA bundle is published in ConfigMap "
                                f"{namespace}/{server.ca_config_map}")
        except (ApiPermanentError, ApiTransientError) as exc:
            logger.warning(f"the {name}'s certificate could not be kept now ({exc}); trying again at the next look")


def _bundle_of(core, namespace: str, server: ServerCertificate, logger) -> bytes | None:
    """The CA bundle in a Secret someone else writes (cert-manager, or the user's own)."""
    found = read_secret(core, namespace, server.secret_name)
    if found is None or not found.data.get(BUNDLE):
        logger.warning(f"Secret {namespace}/{server.secret_name} holds no {BUNDLE}: the webhook's CA bundle "
                       f"cannot be injected; add the CA that signed tls.crt as {BUNDLE}")
        return None
    return found.data[BUNDLE]


@kopf.on.startup()
async def start_certificate_upkeep(memo, logger, **_) -> None:
    config: Certificates = memo.settings.certificates
    if not (config.webhook.generate or config.authenticator.generate or config.webhook.configuration):
        return
    if not config.namespace:
        raise kopf.PermanentError("certificates: the operator has no namespace for its certificates: set "
                                  "certificates.namespace in its settings (or run it with POD_NAMESPACE)")
    memo.certificate_upkeep = asyncio.create_task(_upkeep(memo, logger))


@kopf.on.cleanup()
async def stop_certificate_upkeep(memo, **_) -> None:
    await end_task(memo, "certificate_upkeep")
    follower = getattr(memo, "webhook_certificate", None)
    if follower is not None:
        follower.stop.set()


async def _upkeep(memo, logger) -> None:
    interval = memo.settings.certificates.check_interval.total_seconds()
    while True:
        try:
            await asyncio.to_thread(keep_certificates, memo, logger)
        except Exception as exc:  # noqa: BLE001  (the upkeep outlives any one look)
            logger.warning(f"certificates: a look failed ({exc!r}); trying again in {interval:g}s")
        await asyncio.sleep(interval)


class WebhookCertificate:
    """The webhook's pair, followed from its Secret into ``directory`` (tls.crt, tls.key)."""

    def __init__(self, core: client.CoreV1Api, namespace: str, secret_name: str, directory: Path) -> None:
        self.core, self.namespace, self.secret_name = core, namespace, secret_name
        self.directory = directory
        self.cert, self.key = directory / CERT, directory / KEY
        self.bundle: bytes | None = None
        self.reloading: ReloadingCertificate | None = None
        self.stop = threading.Event()

    def load(self) -> bool:
        """Write the Secret's pair into the folder; False when the Secret holds none yet."""
        found = read_secret(self.core, self.namespace, self.secret_name)
        return found is not None and self._write(found.data)

    def _write(self, data: Mapping[str, bytes]) -> bool:
        pair = _pair(data, CERT, KEY)
        if pair is None:
            return False
        self.bundle = data.get(BUNDLE) or pair.cert
        for path, content in ((self.key, pair.key), (self.cert, pair.cert)):
            if not path.is_file() or path.read_bytes() != content:  # the same pair is not loaded again
                _replace(path, content)
        return True

    def _written(self, obj: Mapping) -> None:
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        if self._write(data) and self.reloading is not None:
            self.reloading.check()

    def server(self, options) -> AdmissionServer:
        """The webhook's server, with a context that hands new handshakes the newest pair: no restart."""
        self.reloading = ReloadingCertificate(str(self.cert), str(self.key))
        threading.Thread(target=follow_secret, name="webhook-certificate", daemon=True,
                         args=(self.core, self.namespace, self.secret_name, self._written, self.stop,
                               "the webhook certificate")).start()
        return admission_server(options, self.reloading.context, self.bundle)


def _replace(path: Path, content: bytes) -> None:
    """Write ``path`` whole, readable by this user only, in one rename."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def webhook_server_from_secret(options, memo, logger) -> AdmissionServer:
    """The webhook server, serving the pair in its Secret; in generated mode the Secret is made
    first. Not there yet (cert-manager still issuing, or a lost race): tried again shortly."""
    config: Certificates = memo.settings.certificates
    directory = Path(options.webhook_cert_dir) if options.webhook_cert_dir else \
        Path(tempfile.mkdtemp(prefix="tokenwarden-webhook-"))
    if config.webhook.generate:
        keep_certificates(memo, logger)
    follower = WebhookCertificate(memo.core, config.namespace, config.webhook.secret_name, directory)
    if not follower.load():
        raise kopf.TemporaryError(f"waiting for Secret {config.namespace}/{config.webhook.secret_name} to hold "
                                  f"the webhook's certificate (tls.crt, tls.key)", delay=5)
    memo.webhook_certificate = follower
    return follower.server(options)
