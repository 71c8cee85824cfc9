"""The chart serves the authenticator over HTTPS: a certificate the operator makes at run time
(the chart only says for which names), cert-manager's, or an existing Secret; health and
metrics on a port of their own; plain HTTP only when asked for."""
from __future__ import annotations

import pytest
import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from tokenwarden import devcluster
from tokenwarden.config import Settings

from .test_chart import CHART, _container, _deployment, render, run_helm

SERVICE = "tw-tokenwarden-authenticator"
NAMES = {SERVICE, f"{SERVICE}.tokenwarden", f"{SERVICE}.tokenwarden.svc", f"{SERVICE}.tokenwarden.svc.cluster.local"}
CERT_MANAGER = ["--set", "authenticator.tls.certManager.enabled=true",
                "--set", "authenticator.tls.certManager.issuerRef.name=cluster-ca",
                "--set", "authenticator.tls.certManager.issuerRef.kind=ClusterIssuer"]


@pytest.fixture(scope="module")
def helm():
    return devcluster.ensure_helm(log=lambda *_: None)


def _named(docs, kind: str, name: str) -> dict | None:
    return next((d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name), None)


def _sans(pem: bytes) -> tuple[set[str], set[str]]:
    names = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(names.get_values_for_type(x509.DNSName)), {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}


def _signed_by(pem: bytes, ca_pem: bytes) -> bool:
    try:
        x509.load_pem_x509_certificate(pem).verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _tls_volume(docs) -> dict:
    pod = _deployment(docs, "-authenticator")["spec"]["template"]["spec"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "tls"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "tls"]
    assert mount == {"name": "tls", "mountPath": "/etc/tokenwarden/tls", "readOnly": True}
    return volume


def _certificate_settings(docs) -> dict:
    config = _named(docs, "ConfigMap", "tw-tokenwarden")
    return yaml.safe_load(config["data"]["settings.yaml"])["certificates"]


def test_the_authenticator_serves_https_with_the_operators_certificate_by_default(helm):
    docs = render(helm)
    # Made at run time by the operator, for the Service's names: nothing of it in the render.
    assert not _named(docs, "Secret", f"{SERVICE}-tls") and not _named(docs, "ConfigMap", f"{SERVICE}-ca")
    settings = _certificate_settings(docs)
    assert Settings.model_validate({"certificates": settings}).certificates.authenticator.generate
    names = settings["authenticator"].pop("names")
    assert settings["authenticator"] == {"generate": True, "secretName": f"{SERVICE}-tls", "caSecretName": f"{SERVICE}-ca",
                                         "caConfigMap": f"{SERVICE}-ca"}
    assert set(names) == NAMES and names[0] == f"{SERVICE}.tokenwarden.svc", "the first is the common name"
    assert settings["namespace"] == "tokenwarden"
    assert not [d for d in docs if d["kind"] == "Certificate"]
    assert _tls_volume(docs) == {"name": "tls", "secret": {"secretName": f"{SERVICE}-tls"}}

    container = _container(docs, "-authenticator")
    assert {"--port=8443", "--tls-cert=/etc/tokenwarden/tls/tls.crt", "--tls-key=/etc/tokenwarden/tls/tls.key",
            "--metrics-port=9090"} <= set(container["args"])
    assert container["ports"] == [{"name": "https", "containerPort": 8443},
                                  {"name": "metrics", "containerPort": 9090}]
    service = _named(docs, "Service", SERVICE)
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "https"},
                                        {"name": "metrics", "port": 9090, "targetPort": "metrics"}]


def test_extra_names_are_in_the_operators_certificate(helm):
    docs = render(helm, "--set", "authenticator.tls.extraNames={auth.example.com,10.0.0.20}")
    assert set(_certificate_settings(docs)["authenticator"]["names"]) == NAMES | {"auth.example.com", "10.0.0.20"}


def test_the_webhook_takes_cert_manager_or_an_existing_secret_too(helm):
    default = _certificate_settings(render(helm))["webhook"]
    assert default == {"generate": True, "secretName": "tw-tokenwarden-webhook-tls",
                       "caSecretName": "tw-tokenwarden-webhook-ca", "configuration": "tw-tokenwarden",
                       "names": ["tw-tokenwarden-webhook.tokenwarden.svc", "tw-tokenwarden-webhook.tokenwarden"]}
    docs = render(helm, "--set", "operator.webhook.tls.certManager.enabled=true",
                  "--set", "operator.webhook.tls.certManager.issuerRef.name=cluster-ca",
                  "--set", "operator.webhook.tls.certManager.issuerRef.kind=ClusterIssuer")
    (certificate,) = [d for d in docs if d["kind"] == "Certificate"]
    assert certificate["spec"]["secretName"] == "tw-tokenwarden-webhook-tls"
    assert set(certificate["spec"]["dnsNames"]) == set(default["names"])
    assert _certificate_settings(docs)["webhook"]["generate"] is False
    mine = _certificate_settings(render(helm, "--set", "operator.webhook.tls.existingSecret=my-hook-tls"))["webhook"]
    assert mine["secretName"] == "my-hook-tls" and mine["generate"] is False
    assert mine["configuration"] == "tw-tokenwarden", "the operator injects the Secret's ca.crt in every mode"


def test_cert_manager_issues_the_certificate_when_asked(helm):
    docs = render(helm, *CERT_MANAGER, "--set", "authenticator.tls.certManager.renewBefore=360h",
                  "--set", "authenticator.tls.extraNames={10.0.0.20}")
    (certificate,) = [d for d in docs if d["kind"] == "Certificate"]
    assert certificate["apiVersion"] == "cert-manager.io/v1"
    spec = certificate["spec"]
    assert spec["secretName"] == f"{SERVICE}-tls"
    assert set(spec["dnsNames"]) == NAMES and spec["ipAddresses"] == ["10.0.0.20"]
    assert spec["issuerRef"] == {"name": "cluster-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert spec["renewBefore"] == "360h" and "duration" not in spec
    assert "server auth" in spec["usages"]
    # cert-manager writes the Secret that the pods mount; the chart makes no pair and, not
    # knowing the issuer's CA, publishes none unless given it.
    assert _tls_volume(docs) == {"name": "tls", "secret": {"secretName": f"{SERVICE}-tls"}}
    assert not _named(docs, "Secret", f"{SERVICE}-tls") and not _named(docs, "ConfigMap", f"{SERVICE}-ca")
    assert "authenticator" not in _certificate_settings(docs), "the operator makes nothing for it"
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    published = render(helm, *CERT_MANAGER, "--set-string", f"authenticator.tls.caBundle={pem}")
    assert _named(published, "ConfigMap", f"{SERVICE}-ca")["data"] == {"ca.crt": pem}


def _made_for_tls(docs) -> list[dict]:
    """What the chart would make for the authenticator's TLS: a Certificate, or a Secret or
    ConfigMap of the authenticator's (its RBAC objects share the name's prefix)."""
    return [d for d in docs if d["kind"] == "Certificate"
            or (d["kind"] in ("Secret", "ConfigMap") and d["metadata"]["name"].startswith(f"{SERVICE}-"))]


def test_an_existing_secret_is_mounted_and_nothing_is_made(helm):
    docs = render(helm, "--set", "authenticator.tls.existingSecret=my-auth-tls")
    assert _tls_volume(docs) == {"name": "tls", "secret": {"secretName": "my-auth-tls"}}
    assert not _made_for_tls(docs)


def test_plain_http_only_when_tls_is_disabled(helm):
    docs = render(helm, "--set", "authenticator.tls.enabled=false", "--set", "authenticator.port=8080")
    container = _container(docs, "-authenticator")
    assert "--port=8080" in container["args"]
    assert not [a for a in container["args"] if a.startswith("--tls")]
    assert not [m for m in container["volumeMounts"] if m["name"] == "tls"]
    assert _named(docs, "Service", SERVICE)["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http"},
        {"name": "metrics", "port": 9090, "targetPort": "metrics"}]
    assert not _made_for_tls(docs)


def test_probes_and_the_service_monitor_use_the_metrics_ports(helm):
    docs = render(helm, "--set", "metrics.serviceMonitor.enabled=true")
    container = _container(docs, "-authenticator")
    for probe, path in (("startupProbe", "/healthz"), ("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [("metrics", "/metrics")]
    selected = [d for d in docs if d["kind"] == "Service"
                and monitor["spec"]["selector"]["matchLabels"].items() <= d["metadata"]["labels"].items()]
    with_metrics = {d["metadata"]["name"] for d in selected if any(p["name"] == "metrics" for p in d["spec"]["ports"])}
    assert with_metrics == {"tw-tokenwarden-operator-metrics", SERVICE}
    # Nothing scrapes the public port.
    assert not [e for e in monitor["spec"]["endpoints"] if e["port"] in ("https", "http")]


@pytest.mark.parametrize("args, words", [
    (["--set", "authenticator.tls.certManager.enabled=true"], "authenticator.tls.certManager.issuerRef.name"),
    ([*CERT_MANAGER, "--set", "authenticator.tls.existingSecret=mine"], "exclude each other"),
    (["--set", "operator.webhook.tls.certManager.enabled=true"], "operator.webhook.tls.certManager.issuerRef.name"),
    (["--set", "operator.webhook.tls.certManager.enabled=true", "--set", "operator.webhook.tls.certManager.issuerRef.name=a",
      "--set", "operator.webhook.tls.existingSecret=mine"], "operator.webhook.tls: certManager.enabled and existingSecret"),
    (["--set", "certificates.servingLifetime=90"], "/certificates/servingLifetime"),
    (["--set", "authenticator.metricsPort=8443"], "authenticator.metricsPort: 8443 is the container's https port"),
    (["--set", "authenticator.tls.enable=true"], "'enable' not allowed"),
])
def test_bad_tls_values_fail_naming_the_value(helm, args, words):
    result = run_helm(helm, "template", "tw", str(CHART), *args)
    assert result.returncode != 0
    assert words in result.stderr, result.stderr
