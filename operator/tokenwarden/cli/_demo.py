from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import click
import yaml
from kubernetes import client

from tokenwarden import devcluster, kube
from tokenwarden.kube._resources import GROUP, VERSION

PLURALS = {"ServiceAccount": "serviceaccounts", "RoleBinding": "rolebindings",
           "ServiceToken": "servicetokens", "IngestionAPIKey": "ingestionapikeys"}


def _step(text: str) -> None:
    click.echo(click.style(f"\n==> {text}", bold=True) if sys.stdout.isatty() else f"\n==> {text}")


def _run_cli(kubeconfig: Path, *args: str) -> None:
    command = [sys.executable, "-m", "tokenwarden", *args, "--kubeconfig", str(kubeconfig)]
    click.echo("$ " + shlex.join(["tokenwarden", *args]))
    result = subprocess.run(command, text=True, capture_output=True)
    click.echo(result.stdout.rstrip())
    if result.returncode:
        raise click.ClickException(result.stderr.strip().removeprefix("Error: ") or f"tokenwarden {args[0]} failed")


@click.command("demo")
@click.option("--keep", is_flag=True, help="Keep the cluster and operator running until Ctrl-C.")
def demo(keep: bool) -> None:
    """Start a local control plane and the operator, then mint and show tokens.

    Everything runs on this machine: a real etcd and kube-apiserver, the CRDs,
    the operator as its own process, and the CLI creating an account, a binding,
    a service token and an ingestion API key.
    """
    root = devcluster.hack_dir().parent
    workdir = Path(tempfile.mkdtemp(prefix="tokenwarden-demo-"))
    _step("Building (once) and starting a local Kubernetes control plane")
    try:
        plane = devcluster.ControlPlane(devcluster.ensure_binaries(log=click.echo),
                                        kubeconfig=workdir / "kubeconfig")
        plane.start()
    except devcluster.ControlPlaneError as exc:
        raise click.ClickException(str(exc)) from exc
    operator = None
    try:
        api = kube.load_api_client(str(plane.kubeconfig))
        kube.install_crds(api, root / "crds")
        click.echo(f"kubernetes {plane.version} at {plane.server}")
        click.echo(f"kubeconfig: {plane.kubeconfig}")

        # With its admission webhook: without it, a token could grant any role.
        webhook_port = devcluster.free_port()
        _step(f"Starting the operator (tokenwarden operator --all-namespaces --webhook-port {webhook_port})")
        log_path = workdir / "operator.log"
        with open(log_path, "wb") as log:
            operator = subprocess.Popen(
                [sys.executable, "-m", "tokenwarden", "operator", "--all-namespaces",
                 "--webhook-port", str(webhook_port), "--kubeconfig", str(plane.kubeconfig)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        click.echo(f"operator pid {operator.pid}, log {log_path}")

        _step("kubectl apply -n demo -f examples/quickstart.yaml")
        client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="demo")))
        custom = client.CustomObjectsApi(api)
        for doc in yaml.safe_load_all((root / "examples" / "quickstart.yaml").read_text()):
            custom.create_namespaced_custom_object(GROUP, VERSION, "demo", PLURALS[doc["kind"]], doc)
            click.echo(f"{doc['kind'].lower()}.tokenwarden.io/{doc['metadata']['name']} created")

        _step("Service tokens and ingestion API keys from the command line (shown once)")
        _run_cli(plane.kubeconfig, "service-token", "create", "--name", "ci-pipeline",
                 "--roles", "power-user", "--expiration", "2099-12-31", "-n", "demo")
        _run_cli(plane.kubeconfig, "ingestion-api-key", "create", "--name", "otel-collector",
                 "--description", "OpenTelemetry collector", "-n", "demo")
        _run_cli(plane.kubeconfig, "service-token", "list", "-n", "demo")
        _run_cli(plane.kubeconfig, "ingestion-api-key", "list", "-n", "demo")

        _step("What the cluster stores: a hash in status, the token only in its Secret")
        token = custom.get_namespaced_custom_object(GROUP, VERSION, "demo", "servicetokens", "profiling-agent")
        status = token["status"]
        click.echo(f"servicetoken/profiling-agent: phase={status['phase']} tokenId={status['tokenId']} "
                   f"tokenHash={status['tokenHash']} secret={status['secretName']} "
                   f"roles={status['effectiveRoles']} expiresAt={status.get('expiresAt')}")
        if keep:
            click.echo(f"\nRunning; export KUBECONFIG={plane.kubeconfig} to look around. Ctrl-C stops.")
            threading.Event().wait()
    finally:
        if operator is not None:
            operator.terminate()
            try:
                operator.wait(20)
            except subprocess.TimeoutExpired:
                operator.kill()
        plane.stop()
        _step("Stopped the operator and the control plane")
