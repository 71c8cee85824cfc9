from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import click

from tokenwarden import devcluster, kube


def _crds_dir() -> Path:
    return devcluster.hack_dir().parent / "crds"


@click.command("build-controlplane")
def build_controlplane() -> None:
    """Build (once) and cache etcd, kube-apiserver, kube-controller-manager, helm, promtool and the
    dashboard checker."""
    started = time.monotonic()
    try:
        binaries = devcluster.ensure_binaries(log=lambda m: click.echo(m, err=True))
        helm = devcluster.ensure_helm(log=lambda m: click.echo(m, err=True))
        promtool = devcluster.ensure_promtool(log=lambda m: click.echo(m, err=True))
        devcluster.ensure_dashboard_check(log=lambda m: click.echo(m, err=True))
    except devcluster.ControlPlaneError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"control plane {binaries.kubernetes_version}, {helm} and {promtool} ready in "
               f"{time.monotonic() - started:.0f}s: {binaries.directory}")


@click.command("build-node")
@click.option("--image", "images", multiple=True, default=("tokenwarden:dev",), show_default=True,
              metavar="TAG", help="Also build the product image under this tag (repeatable).")
def build_node(images: tuple[str, ...]) -> None:
    """Build (once) and cache what `dev-cluster --node` runs: the node's Debian packages,
    kubelet, kube-scheduler, kube-proxy, kubectl, CoreDNS, the pause image and the product
    image. Where a node cannot run (no root, no cgroups) it says why and builds nothing."""
    started = time.monotonic()
    log = lambda m: click.echo(m, err=True)  # noqa: E731
    try:
        devcluster.ensure_node_packages(log)
        problems = devcluster.node_problems()
        if problems:
            click.echo("no node here: " + "; ".join(problems))
            return
        devcluster.ensure_node_binaries(log)
        devcluster.ensure_coredns(log)
        devcluster.ensure_pause_image(log)
        for tag in images:
            image = devcluster.build_image(tag, log=log)
            log(f"{tag}: {image.size_mb:.0f} MB (id {image.id[:12]})")
    except devcluster.ControlPlaneError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"node ready to run in {time.monotonic() - started:.0f}s")


@click.command("dev-cluster")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None,
              help="Where to write the kubeconfig (default: a temporary file).")
@click.option("--controller-manager/--no-controller-manager", default=True, show_default=True,
              help="Also run kube-controller-manager (garbage collector, namespaces, SA tokens).")
@click.option("--node", is_flag=True,
              help="Add a real node (containerd, kubelet, kube-scheduler, kube-proxy, cluster DNS) "
                   "in a network namespace of its own; needs root.")
@click.option("--image", "images", multiple=True, metavar="NAME",
              help="With --node: also import this image from buildah's storage (repeatable). "
                   "Images from `make image` are imported anyway.")
def dev_cluster(kubeconfig: str | None, controller_manager: bool, node: bool, images: tuple[str, ...]) -> None:
    """Run a real local etcd + kube-apiserver with tokenwarden's CRDs installed
    (with --node: without them, for the chart to install).

    Prints "kubeconfig: PATH" when ready (with --node: when the node is Ready)
    and serves until SIGINT or SIGTERM; then it stops every process it started
    and removes its files.

    \b
    Examples:
      tokenwarden dev-cluster --kubeconfig /tmp/tw.kubeconfig &
      kubectl --kubeconfig /tmp/tw.kubeconfig get --raw /version
      make image && tokenwarden dev-cluster --node --kubeconfig /tmp/tw.kubeconfig &
      helm install tokenwarden charts/tokenwarden --kubeconfig /tmp/tw.kubeconfig \\
        --set image.repository=tokenwarden,image.tag=dev,image.pullPolicy=Never
    """
    # A handler only records the signal: Event.set() in a handler can deadlock against the
    # main thread's own Event.wait() (they share one lock), and then nothing is stopped.
    received: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda number, _: received.append(number))
    try:
        log = lambda m: click.echo(m, err=True)  # noqa: E731
        if node:
            plane = devcluster.start_node_cluster(kubeconfig=kubeconfig, images=images, log=log)
        else:
            binaries = devcluster.ensure_binaries(log=log)
            plane = devcluster.ControlPlane(binaries, kubeconfig=kubeconfig,
                                            controller_manager=controller_manager, log=log)
            plane.start()
    except devcluster.ControlPlaneError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        if node:
            # A node cluster is for installing the chart, which brings the CRDs (as Helm's own).
            click.echo(f"node {devcluster.NODE_NAME} Ready; install tokenwarden with helm", err=True)
        else:
            kube.install_crds(kube.load_api_client(str(plane.kubeconfig)), _crds_dir())
        click.echo(f"kubernetes: {plane.version} at {plane.server}", err=True)
        click.echo(f"kubeconfig: {plane.kubeconfig}")
        sys.stdout.flush()
        while not received:
            time.sleep(0.2)
    finally:
        plane.stop()
        click.echo("dev-cluster stopped", err=True)
