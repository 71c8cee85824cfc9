from __future__ import annotations

import time

import click

from tokenwarden import devcluster


@click.command("build-image")
@click.option("--tag", default=devcluster.DEFAULT_TAG, show_default=True,
              help="Name of the image (buildah stores it under localhost/).")
@click.option("--base", type=click.Choice(["default", "local"]), default="local", show_default=True,
              help="local: Debian bookworm made here with mmdebstrap (no registry needed); "
                   "default: the Dockerfile's BASE_IMAGE, the public python image (pulled).")
@click.option("--no-cache", is_flag=True, help="Run every step again instead of reusing buildah's layer cache.")
def build_image(tag: str, base: str, no_cache: bool) -> None:
    """Build the product image from the Dockerfile with buildah (no Docker needed).

    The image stays in buildah's storage and is exported as a docker-archive tar into the
    cache, where the local node's containerd imports it. Installs buildah and mmdebstrap
    with apt-get when they are missing and this runs as root.

    \b
    Example:
      tokenwarden-dev build-image --tag tokenwarden:dev
    """
    started = time.monotonic()
    log = lambda message: click.echo(message, err=True)  # noqa: E731
    try:
        image = devcluster.build_image(tag, log=log, base=base, no_cache=no_cache)
        archive = devcluster.image_archive(tag)
    except devcluster.ControlPlaneError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{image.name}: {image.size_mb:.0f} MB (id {image.id[:12]}), built in "
               f"{time.monotonic() - started:.0f}s; archive {archive}")
