"""The certificates on the node, as Argo CD meets them: a second render applied server-side
and a third one diffed change nothing and restart nothing, and the caBundle the operator
injected stays."""
from __future__ import annotations

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
