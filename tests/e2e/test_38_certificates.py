"""The certificates on the node, as Argo CD and a cluster admin meet them: a second render
applied server-side and a third one diffed change nothing and restart nothing; a serving
certificate renewed early reaches the webhook and the authenticator pods with no restart,
while admission and /verify keep answering."""
from __future__ import annotations

import base64
import socket
import ssl
import time

from cryptography import x509

from .conftest import CHART, NAMESPACE, RELEASE

INSTANCE = f"app.kubernetes.io/instance={RELEASE}"
GITOPS = "argocd-controller"


def _pods(node) -> dict[str, str]:
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in node.pods(NAMESPACE, INSTANCE)
            if not p["metadata"].get("deletionTimestamp")}


def _ca_bundles(node) -> set:
    config = node.json("get", "validatingwebhookconfiguration", RELEASE)
    return {w["clientConfig"].get("caBundle") for w in config["webhooks"]}


def _render(node, release) -> str:
    return node.helm("template", RELEASE, str(CHART), "-n", NAMESPACE, "--values", str(release.values)).stdout


def test_a_server_side_apply_of_another_render_changes_nothing(node, release):
    bundles = node.wait_until("the operator injected the webhook's CA bundle",
                              lambda: (lambda b: b if None not in b else None)(_ca_bundles(node)))
    pods = _pods(node)
    node.kubectl("apply", "--server-side", f"--field-manager={GITOPS}", "-f", "-", input=_render(node, release))
    diff = node.kubectl("diff", "--server-side", f"--field-manager={GITOPS}", "-f", "-", check=False,
                        input=_render(node, release))
    assert diff.returncode == 0 and not diff.stdout.strip(), diff.stdout + diff.stderr
    assert _ca_bundles(node) == bundles, "the applied render left the injected caBundle alone"
    assert _pods(node) == pods, "nothing restarted"


def _secret_serial(node, name: str) -> int | None:
    secret = node.found("secret", "-n", NAMESPACE, name)
    if not secret:
        return None
    return x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"])).serial_number


def _served_serial(address: str, port: int) -> int | None:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the serial is what is compared
    try:
        with socket.create_connection((address, port), timeout=3) as raw:
            with context.wrap_socket(raw) as tls:
                return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number
    except OSError:
        return None


def _ready_ips(node, component: str) -> list[str]:
    return [p["status"]["podIP"] for p in node.pods(NAMESPACE, f"{INSTANCE},app.kubernetes.io/component={component}")
            if not p["metadata"].get("deletionTimestamp") and p["status"].get("podIP")
            and all(c.get("ready") for c in p["status"].get("containerStatuses", []))
            and p["status"].get("containerStatuses")]


def _admitted(node) -> bool:
    return node.kubectl("create", "--dry-run=server", "-f", "-", check=False, input=f"""
apiVersion: tokenwarden.io/v1alpha1
kind: ServiceAccount
metadata: {{name: renewal-probe, namespace: {NAMESPACE}}}
""").returncode == 0


def test_renewed_certificates_reach_both_servers_without_a_restart(node, release):
    """Renewed every 2 minutes (a 6-minute lifetime, renewed 4 minutes ahead): longer than the
    kubelet takes to update a mounted Secret, so each certificate reaches every pod."""
    node.helm("upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values",
              "--set", "certificates.servingLifetime=6m", "--set", "certificates.renewBefore=4m",
              "--set", "certificates.checkInterval=5s", "--wait", "--timeout", "5m")
    node.wait_until("the webhook answers", lambda: _admitted(node))
    pods = _pods(node)
    operators, authenticators = _ready_ips(node, "operator"), _ready_ips(node, "authenticator")
    assert operators and authenticators
    servers = {"webhook": [(ip, 9443) for ip in operators], "authenticator": [(ip, 8443) for ip in authenticators]}
    secrets = {"webhook": f"{RELEASE}-webhook-tls", "authenticator": f"{RELEASE}-authenticator-tls"}
    seen: dict[str, dict[int, float]] = {k: {} for k in servers}  # serial → when its Secret was first seen
    served: dict[tuple, dict[int, float]] = {a: {} for v in servers.values() for a in v}  # per pod: serial → first served

    def reached(name: str) -> dict[int, float]:
        """Serials renewed while watched (not the first) that every pod has served, and when the last one did."""
        first = next(iter(seen[name]), None)
        return {s: max(served[a][s] for a in servers[name]) for s in seen[name]
                if s != first and all(s in served[a] for a in servers[name])}

    answered = 0
    deadline = time.monotonic() + 480
    while time.monotonic() < deadline and not all(reached(name) for name in servers):
        now = time.monotonic()
        for name, addresses in servers.items():
            seen[name].setdefault(_secret_serial(node, secrets[name]), now)
            for address in addresses:
                serial = _served_serial(*address)
                if serial is not None:
                    served[address].setdefault(serial, now)
        assert _admitted(node), "admission refused a create while certificates were renewed"
        answered += 1
        time.sleep(1)
    assert all(reached(name) for name in servers), (seen, served)
    assert _pods(node) == pods, "a renewal restarted a pod"
    for name in servers:
        for i, (serial, when) in enumerate(reached(name).items()):
            node.record(f"renewed {name} certificate #{i + 1}: Secret written to served by every pod", when - seen[name][serial])
    node.record("admission answered during the renewals (creates, dry run)", answered)
