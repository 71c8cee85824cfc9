"""The chart serves the authenticator over HTTPS: the chart's own CA and certificate (kept
across upgrades), cert-manager's, or an existing Secret; health and metrics on a port of
their own; plain HTTP only when asked for."""
from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from tokenwarden import devcluster

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


def test_the_authenticator_serves_https_with_the_charts_certificate_by_default(helm):
    docs = render(helm)
    secret = _named(docs, "Secret", f"{SERVICE}-tls")
    ca = _named(docs, "ConfigMap", f"{SERVICE}-ca")["data"]["ca.crt"].encode()
    cert = base64.b64decode(secret["data"]["tls.crt"])
    assert secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["ca.crt"]) == ca
    assert _signed_by(cert, ca), "the published CA signed the serving certificate"
    dns, _ = _sans(cert)
    assert dns == NAMES, "every name the Service answers to in the cluster"
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


def test_extra_names_are_in_the_charts_certificate(helm):
    docs = render(helm, "--set", "authenticator.tls.extraNames={auth.example.com,10.0.0.20}")
    secret = _named(docs, "Secret", f"{SERVICE}-tls")
    dns, ips = _sans(base64.b64decode(secret["data"]["tls.crt"]))
    assert dns == NAMES | {"auth.example.com"} and ips == {"10.0.0.20"}


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
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    published = render(helm, *CERT_MANAGER, "--set-string", f"authenticator.tls.caBundle={pem}")
    assert _named(published, "ConfigMap", f"{SERVICE}-ca")["data"] == {"ca.crt": pem}


def test_an_existing_secret_is_mounted_and_nothing_is_made(helm):
    docs = render(helm, "--set", "authenticator.tls.existingSecret=my-auth-tls")
    assert _tls_volume(docs) == {"name": "tls", "secret": {"secretName": "my-auth-tls"}}
    assert not [d for d in docs if d["kind"] == "Certificate" or d["metadata"]["name"].startswith(f"{SERVICE}-")]


def test_plain_http_only_when_tls_is_disabled(helm):
    docs = render(helm, "--set", "authenticator.tls.enabled=false", "--set", "authenticator.port=8080")
    container = _container(docs, "-authenticator")
    assert "--port=8080" in container["args"]
    assert not [a for a in container["args"] if a.startswith("--tls")]
    assert not [m for m in container["volumeMounts"] if m["name"] == "tls"]
    assert _named(docs, "Service", SERVICE)["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http"},
        {"name": "metrics", "port": 9090, "targetPort": "metrics"}]
    assert not [d for d in docs if d["kind"] == "Certificate" or d["metadata"]["name"].startswith(f"{SERVICE}-")]


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
    (["--set", "authenticator.metricsPort=8443"], "authenticator.metricsPort: 8443 is the container's https port"),
    (["--set", "authenticator.tls.enable=true"], "'enable' not allowed"),
])
def test_bad_tls_values_fail_naming_the_value(helm, args, words):
    result = run_helm(helm, "template", "tw", str(CHART), *args)
    assert result.returncode != 0
    assert words in result.stderr, result.stderr


def test_helm_upgrade_keeps_the_authenticators_ca(helm, cluster, core):
    """Installed on the API server: an upgrade with the same values keeps the CA, the Secret
    and the published ConfigMap (lookup); new extra names get a new certificate for them."""
    namespace, release = "tw-helm-authn-tls", "twtls"
    values = ["--set", "crds.enabled=false", "--set", "operator.webhook.enabled=false"]

    def state():
        secret = core.read_namespaced_secret(f"{release}-tokenwarden-authenticator-tls", namespace)
        ca = core.read_namespaced_config_map(f"{release}-tokenwarden-authenticator-ca", namespace)
        return secret.data, ca.data

    result = run_helm(helm, "install", release, str(CHART), "-n", namespace, "--create-namespace", *values,
                      kubeconfig=cluster.kubeconfig)
    assert result.returncode == 0, result.stderr
    try:
        before = state()
        assert base64.b64decode(before[0]["ca.crt"]).decode() == before[1]["ca.crt"]
        upgrade = run_helm(helm, "upgrade", release, str(CHART), "-n", namespace, *values,
                           kubeconfig=cluster.kubeconfig)
        assert upgrade.returncode == 0, upgrade.stderr
        assert state() == before, "same values: same CA, same certificate"

        renamed = run_helm(helm, "upgrade", release, str(CHART), "-n", namespace, *values,
                           "--set", "authenticator.tls.extraNames={auth.example.com}", kubeconfig=cluster.kubeconfig)
        assert renamed.returncode == 0, renamed.stderr
        data, ca = state()
        dns, _ = _sans(base64.b64decode(data["tls.crt"]))
        assert "auth.example.com" in dns and f"{release}-tokenwarden-authenticator.{namespace}.svc" in dns
        assert _signed_by(base64.b64decode(data["tls.crt"]), ca["ca.crt"].encode())
        assert data["tls.crt"] != before[0]["tls.crt"]
    finally:
        run_helm(helm, "uninstall", release, "-n", namespace, kubeconfig=cluster.kubeconfig)
        core.delete_namespace(namespace)

