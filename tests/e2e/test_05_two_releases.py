"""Two namespace-scoped releases on the node, side by side, as a cluster admin installs them
(docs/install.md): the first installs the CRDs, the second has crds.enabled=false. Each operator
runs as the chart's pod under its release's Roles and mints its own namespace's tokens. Runs
before the tier's main release (test_10), and takes its CRDs away again when it ends."""
from __future__ import annotations

import uuid

from .conftest import CHART, IMAGE


def _token_phase(node, namespace: str) -> str | None:
    token = node.found("servicetoken", "agent", "-n", namespace)
    return ((token or {}).get("status") or {}).get("phase")


def test_two_namespace_scoped_releases_mint_their_own_tokens(node):
    suffix = uuid.uuid4().hex[:6]
    image = ["--set", f"image.repository={IMAGE[0]}", "--set", f"image.tag={IMAGE[1]}",
             "--set", "image.pullPolicy=Never"]
    releases = [("scoped-a", f"team-a-{suffix}", ["--set", "crds.keep=false"]),
                ("scoped-b", f"team-b-{suffix}", ["--set", "crds.enabled=false"])]
    installed = []
    try:
        for release, namespace, extra in releases:
            node.helm("install", release, str(CHART), "-n", namespace, "--create-namespace", *image,
                      "--set", f"operator.namespaces={{{namespace}}}", *extra, "--wait", "--timeout", "5m")
            installed.append((release, namespace))
        for _, namespace, _ in releases:
            node.kubectl("apply", "-n", namespace, "-f", "-", input=(
                "apiVersion: tokenwarden.io/v1alpha1\nkind: ServiceToken\nmetadata: {name: agent}\n"
                "spec: {roles: [writer], ttl: 24h}\n"))
        for release, namespace, _ in releases:
            node.wait_until(f"the token in {namespace} Active", lambda: _token_phase(node, namespace) == "Active")
            secret = node.json("get", "secret", "agent", "-n", namespace)
            assert secret["data"]["token"]
            pods = node.pods(namespace, "app.kubernetes.io/component=operator")
            assert pods
            for pod in pods:  # the active replica and the standby alike
                log = node.logs(namespace, pod["metadata"]["name"])
                # Nothing it does is refused, and it never looks at the other release's namespace.
                assert "Forbidden" not in log and "Not enough permissions" not in log, log[-3000:]
                assert not [other for _, other, _ in releases if other != namespace and other in log]
        # Neither operator's account may touch the other's namespace.
        (first, first_namespace, _), (second, second_namespace, _) = releases
        for release, namespace, other in ((first, first_namespace, second_namespace),
                                          (second, second_namespace, first_namespace)):
            account = f"--as=system:serviceaccount:{namespace}:{release}-tokenwarden-operator"
            assert node.kubectl("auth", "can-i", "get", "secrets", "-n", namespace, account).stdout.strip() == "yes"
            for verb in ("get", "list", "create", "patch", "delete"):
                answer = node.kubectl("auth", "can-i", verb, "secrets", "-n", other, account, check=False)
                assert answer.stdout.strip() == "no", f"{release} may {verb} secrets in {other}"
    finally:
        for release, namespace in reversed(installed):
            node.helm("uninstall", release, "-n", namespace, "--wait")
            node.kubectl("delete", "namespace", namespace, "--wait=false")
