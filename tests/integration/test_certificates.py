"""The operator's own certificates on the real API server, the operator running as in production
(`tokenwarden operator`, its settings as the chart writes them): it makes the CA and serving
Secrets, injects the webhook's CA bundle and publishes the authenticator's; a serving
certificate renewed early (a short lifetime) reaches the webhook and the authenticator with no
restart while admission and /verify keep answering; a CA rotation publishes the new CA before
anything is signed by it.

No kubelet runs here: where a pod would mount the authenticator's Secret, a thread of this test
writes it into a folder as the kubelet updates a Secret volume (an atomic swap of ..data).
"""
from __future__ import annotations

import base64
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from kubernetes import client

from tokenwarden import devcluster
from tokenwarden.kube._certificates import FIELD_MANAGER, follow_secret
from tokenwarden.policies._certificates import ROTATE_CA_ANNOTATION
from tokenwarden.tls import signed_by

from ..conftest import TEST_SETTINGS, AuthenticatorProcess, OperatorProcess
from .kubehelpers import eventually
from .test_authenticator_tls import _Volume
from .test_chart import render

NAMESPACE = "tw-certificates"
GUARDED = "tw-certificates-guarded"
CONFIGURATION = "tw-certificates"  # the chart's name for it with fullnameOverride=tw-certificates
SETTINGS = TEST_SETTINGS + f"""
certificates:
  namespace: {NAMESPACE}
  servingLifetime: 45s
  renewBefore: 35s
  caRotationOverlap: 4s
  checkInterval: 1s
  webhook:
    generate: true
    secretName: tw-webhook-tls
    caSecretName: tw-webhook-ca
    names: [127.0.0.1]
    configuration: {CONFIGURATION}
  authenticator:
    generate: true
    secretName: tw-authn-tls
    caSecretName: tw-authn-ca
    caConfigMap: tw-authn-ca
    names: [127.0.0.1, localhost]
"""
GITOPS = "argocd-controller"  # the field manager Argo CD applies with


def _namespace(core, name):
    from kubernetes.client.rest import ApiException

    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    except ApiException as exc:
        assert exc.status == 409


def _chart_configuration(port: int) -> dict:
    """The chart's ValidatingWebhookConfiguration, as rendered; only the address differs (no
    Service routes to a process here, so each webhook is given its URL on this host)."""
    helm = devcluster.ensure_helm(log=lambda *_: None)
    docs = render(helm, "-n", NAMESPACE, "--set", f"fullnameOverride={CONFIGURATION}",
                  "--set", f"operator.namespaces={{{GUARDED}}}", "--set", "crds.enabled=false")
    (config,) = [d for d in docs if d["kind"] == "ValidatingWebhookConfiguration"]
    for webhook in config["webhooks"]:
        path = webhook["clientConfig"]["service"]["path"]
        webhook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}"}
    return config


def _apply(admission, body: dict, dry_run: bool = False):
    """A server-side apply, as Argo CD's with ServerSideApply=true (no force)."""
    return admission.patch_validating_webhook_configuration(
        body["metadata"]["name"], body, field_manager=GITOPS, dry_run="All" if dry_run else None,
        _content_type="application/apply-patch+yaml")


@pytest.fixture(scope="module")
def operator_with_certificates(cluster, core, tmp_path_factory):
    for name in (NAMESPACE, GUARDED):
        _namespace(core, name)
    workdir = tmp_path_factory.mktemp("certificates")
    process = OperatorProcess(cluster.kubeconfig, workdir,
                              extra_args=["--no-webhook-managed", "--webhook-cert-dir", str(workdir / "webhook")])
    (workdir / "webhook").mkdir()
    process.config.write_text(SETTINGS)
    process.start()
    admission = client.AdmissionregistrationV1Api(core.api_client)
    process.chart_configuration = _chart_configuration(process.webhook_port)
    _apply(admission, process.chart_configuration)
    yield process
    admission.delete_validating_webhook_configuration(CONFIGURATION)
    process.stop()


def _secret(core, name) -> dict[str, bytes] | None:
    from kubernetes.client.rest import ApiException

    try:
        return {k: base64.b64decode(v) for k, v in (core.read_namespaced_secret(name, NAMESPACE).data or {}).items()}
    except ApiException as exc:
        assert exc.status == 404
        return None


def _injected(admission) -> set[bytes]:
    config = admission.read_validating_webhook_configuration(CONFIGURATION)
    return {base64.b64decode(w.client_config.ca_bundle) if w.client_config.ca_bundle else b"" for w in config.webhooks}


def _presented(port: int, bundle: bytes) -> int:
    """The serial of the certificate a new handshake gets, verified against ``bundle``."""
    context = ssl.create_default_context(cadata=bundle.decode())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


def _verifies(port: int, bundle: bytes) -> bool:
    try:
        return _presented(port, bundle) is not None
    except ssl.SSLError:
        return False


def _admitted(custom, name: str) -> bool:
    """A dry-run create in the guarded namespace: sent to the webhook, stored nowhere."""
    body = {"apiVersion": "tokenwarden.io/v1alpha1", "kind": "ServiceAccount", "metadata": {"name": name}, "spec": {}}
    custom.create_namespaced_custom_object("tokenwarden.io", "v1alpha1", GUARDED, "serviceaccounts", body,
                                           dry_run="All")
    return True


def test_the_operator_makes_its_certificates_and_injects_the_ca_bundle(operator_with_certificates, core):
    admission = client.AdmissionregistrationV1Api(core.api_client)
    assert eventually(lambda: all(_secret(core, n) for n in ("tw-webhook-ca", "tw-webhook-tls", "tw-authn-ca",
                                                              "tw-authn-tls")), 30), operator_with_certificates.log()[-3000:]
    for server, names in (("webhook", {"127.0.0.1"}), ("authn", {"127.0.0.1", "localhost"})):
        ca, serving = _secret(core, f"tw-{server}-ca"), _secret(core, f"tw-{server}-tls")
        assert signed_by(serving["tls.crt"], ca["tls.crt"])
        assert serving["ca.crt"] == ca["ca.crt"] == ca["tls.crt"].strip() + b"\n"
        sans = x509.load_pem_x509_certificate(serving["tls.crt"]).extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        assert {*sans.get_values_for_type(x509.DNSName), *map(str, sans.get_values_for_type(x509.IPAddress))} == names
        assert core.read_namespaced_secret(f"tw-{server}-tls", NAMESPACE).type == "kubernetes.io/tls"

    webhook_ca = _secret(core, "tw-webhook-ca")["ca.crt"]
    assert eventually(lambda: _injected(admission) == {webhook_ca}, 20)
    # Only caBundle is the operator's: whoever applies the rest keeps owning it.
    config = admission.read_validating_webhook_configuration(CONFIGURATION)
    ours = [f for f in config.metadata.managed_fields if f.manager == FIELD_MANAGER]
    assert len(ours) == 1 and "caBundle" in str(ours[0].fields_v1) and "rules" not in str(ours[0].fields_v1)

    published = eventually(lambda: _config_map(core), 20)
    assert published == _secret(core, "tw-authn-ca")["ca.crt"].decode()
    assert _admitted(client.CustomObjectsApi(core.api_client), "first")


def _config_map(core) -> str | None:
    from kubernetes.client.rest import ApiException

    try:
        return core.read_namespaced_config_map("tw-authn-ca", NAMESPACE).data["ca.crt"]
    except ApiException:
        return None


class _Kubelet:
    """Keeps a folder equal to a Secret, as the kubelet keeps a Secret volume; records when it
    saw each new certificate."""

    def __init__(self, core, name: str, folder: Path) -> None:
        self.volume = _Volume(folder)
        self.seen: dict[int, float] = {}  # serial → monotonic time the Secret holding it was seen
        self.stop = threading.Event()
        first = _secret(core, name)
        self._write(first)
        self.thread = threading.Thread(target=follow_secret, daemon=True, args=(
            core, NAMESPACE, name, lambda obj: self._write(
                {k: base64.b64decode(v) for k, v in obj["data"].items()}), self.stop, "test"))
        self.thread.start()

    def _write(self, data: dict[str, bytes]) -> None:
        serial = x509.load_pem_x509_certificate(data["tls.crt"]).serial_number
        if serial in self.seen:
            return
        self.seen[serial] = time.monotonic()
        staging = self.volume.root.parent / f"staging-{serial}"
        staging.mkdir()
        for key in ("tls.crt", "tls.key", "ca.crt"):
            (staging / key).write_bytes(data[key])
        self.volume.write(staging / "tls.crt", staging / "tls.key", staging / "ca.crt")


def test_renewed_certificates_reach_both_servers_while_they_keep_answering(operator_with_certificates, core, cluster,
                                                                          tmp_path, record_property):
    """Serving certificates live 45 s and are renewed after 10: the webhook (served by the
    operator from its Secret) and the authenticator (from files the kubelet would update)
    present each new one to new handshakes, with no restart, and answer throughout."""
    operator = operator_with_certificates
    custom = client.CustomObjectsApi(core.api_client)
    assert eventually(lambda: _secret(core, "tw-authn-tls") and _config_map(core), 30)
    kubelet = _Kubelet(core, "tw-authn-tls", tmp_path / "authn-tls")
    authenticator = AuthenticatorProcess(cluster, tmp_path, port=devcluster.free_port(), tls=kubelet.volume.root,
                                         extra=("--tls-check-interval", "0.5"))
    webhook_bundle = _secret(core, "tw-webhook-ca")["ca.crt"]
    authn_bundle = _config_map(core).encode()
    served: dict[str, dict[int, float]] = {"webhook": {}, "authenticator": {}}
    webhook_issued: dict[int, float] = {}
    answered = verified = 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and min(len(s) for s in served.values()) < 3:
            now = time.monotonic()
            webhook_secret = _secret(core, "tw-webhook-tls")
            webhook_issued.setdefault(x509.load_pem_x509_certificate(webhook_secret["tls.crt"]).serial_number, now)
            served["webhook"].setdefault(_presented(operator.webhook_port, webhook_bundle), now)
            served["authenticator"].setdefault(_presented(authenticator.port, authn_bundle), now)
            answered += _admitted(custom, f"probe-{answered}")
            response = authenticator.get("/verify", headers={"Authorization": "Bearer twst_unknown"})
            assert response.status_code == 401, response.text
            verified += 1
            time.sleep(0.2)
        assert len(served["webhook"]) >= 3, (served, operator.log()[-3000:])
        assert len(served["authenticator"]) >= 3, (served, authenticator.log()[-3000:])
        assert authenticator.process.poll() is None and operator.process.poll() is None
        assert operator.starts == 1, "no restart"
        assert "TLS certificate reloaded" in authenticator.log()
    finally:
        kubelet.stop.set()
        authenticator.stop()
    # How long a renewed certificate took to be presented, from when its Secret was seen (at the
    # loop's pace, 0.2 s plus the calls); reported, not asserted (bench/ holds timings).
    delays = {"webhook": [served["webhook"][s] - webhook_issued[s] for s in served["webhook"] if s in webhook_issued],
              "authenticator": [served["authenticator"][s] - kubelet.seen[s] for s in served["authenticator"]
                                if s in kubelet.seen]}
    record_property("renewal_delays", {k: [round(d, 2) for d in v[1:]] for k, v in delays.items()})
    record_property("answered", {"admission": answered, "verify": verified})
    print(f"\nrenewed certificate presented after (s): { {k: [round(d, 2) for d in v[1:]] for k, v in delays.items()} }; "
          f"admission answered {answered}, /verify answered {verified}")


def test_a_ca_rotation_publishes_the_new_ca_before_it_signs(operator_with_certificates, core):
    """Asked for with an annotation: the new CA is injected beside the old one while the old
    one still signs; then it signs, both still trusted; then the old one is dropped. Admission
    answers at every step."""
    operator = operator_with_certificates
    custom = client.CustomObjectsApi(core.api_client)
    admission = client.AdmissionregistrationV1Api(core.api_client)
    old = _secret(core, "tw-webhook-ca")["tls.crt"]
    core.patch_namespaced_secret("tw-webhook-ca", NAMESPACE, {"metadata": {"annotations": {ROTATE_CA_ANNOTATION: "now"}}})

    introduced = eventually(lambda: _secret(core, "tw-webhook-ca").get("next.crt"), 20)
    assert introduced, operator.log()[-3000:]
    # Published before it signs: whatever is served now was signed by the old CA.
    assert signed_by(_secret(core, "tw-webhook-tls")["tls.crt"], old)
    assert eventually(lambda: _injected(admission) == {old.strip() + b"\n" + introduced.strip() + b"\n"}, 10)
    assert _admitted(custom, "during-introduction")

    assert eventually(lambda: signed_by(_secret(core, "tw-webhook-tls")["tls.crt"], introduced), 30)
    assert ROTATE_CA_ANNOTATION not in (core.read_namespaced_secret("tw-webhook-ca", NAMESPACE).metadata.annotations or {})
    assert eventually(lambda: _verifies(operator.webhook_port, introduced), 10), "served, signed by the new CA"
    assert _admitted(custom, "after-switch")

    assert eventually(lambda: _injected(admission) == {introduced.strip() + b"\n"}, 30)
    assert _admitted(custom, "after-retirement")


def _comparable(config) -> dict:
    body = client.ApiClient().sanitize_for_serialization(config)
    for key in ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid"):
        body["metadata"].pop(key, None)
    return body


def test_a_gitops_apply_keeps_the_injected_ca_bundle_and_shows_no_difference(operator_with_certificates, core):
    """As Argo CD with ServerSideApply=true: the chart's configuration applied again after the
    operator injected its caBundle keeps it, and a server-side dry run of the apply (what
    `kubectl diff --server-side` and Argo CD's diff compare) equals the live object."""
    admission = client.AdmissionregistrationV1Api(core.api_client)
    manifest = operator_with_certificates.chart_configuration
    assert eventually(lambda: _injected(admission) == {_secret(core, "tw-webhook-ca")["ca.crt"]}, 30)
    live = admission.read_validating_webhook_configuration(CONFIGURATION)
    assert {f.manager for f in live.metadata.managed_fields} == {GITOPS, FIELD_MANAGER}

    _apply(admission, manifest)
    after = admission.read_validating_webhook_configuration(CONFIGURATION)
    assert {w.client_config.ca_bundle for w in after.webhooks} == {w.client_config.ca_bundle for w in live.webhooks}
    assert after.metadata.resource_version == live.metadata.resource_version, "the apply changed nothing"
    assert _comparable(_apply(admission, manifest, dry_run=True)) == _comparable(after), "no difference"
    assert _admitted(client.CustomObjectsApi(core.api_client), "after-gitops-apply")


def test_replicas_looking_at_once_agree_on_one_ca_and_one_certificate(core, namespace):
    """Every replica looks at the certificates, a standby too, with no lead: their writes are
    conditional, so four looking at the same moment leave one CA and a certificate it signed."""
    import logging
    from types import SimpleNamespace

    from tokenwarden.config import Settings
    from tokenwarden.handlers._certificates import keep_certificates

    settings = Settings.model_validate({"certificates": {"namespace": namespace, "authenticator": {
        "generate": True, "secretName": "race-tls", "caSecretName": "race-ca", "caConfigMap": "race-ca",
        "names": ["race.example"]}}})
    memo = SimpleNamespace(settings=settings, core=core)
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def replica():
        start.wait()
        try:
            keep_certificates(memo, logging.getLogger("test.replica"))
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures
    ca = core.read_namespaced_secret("race-ca", namespace)
    serving = {k: base64.b64decode(v) for k, v in core.read_namespaced_secret("race-tls", namespace).data.items()}
    ca_cert = base64.b64decode(ca.data["tls.crt"])
    assert signed_by(serving["tls.crt"], ca_cert)
    assert serving["ca.crt"] == base64.b64decode(ca.data["ca.crt"])
    assert core.read_namespaced_config_map("race-ca", namespace).data["ca.crt"].encode() == serving["ca.crt"]
    # A look after the race changes nothing: the state they agreed on is complete.
    versions = (ca.metadata.resource_version, core.read_namespaced_secret("race-tls", namespace).metadata.resource_version)
    keep_certificates(memo, logging.getLogger("test.replica"))
    assert (core.read_namespaced_secret("race-ca", namespace).metadata.resource_version,
            core.read_namespaced_secret("race-tls", namespace).metadata.resource_version) == versions
