"""``tokenwarden-dev``: the commands that build tokenwarden's own test bed (control plane, node,
image). They need a checkout, Go and often root, so the user's ``tokenwarden`` and the kubectl
plugin do not offer them."""
from __future__ import annotations

import click

from tokenwarden.cli._app import SETTINGS
from tokenwarden.cli._devcluster import build_controlplane, build_node
from tokenwarden.cli._image import build_image


@click.group(context_settings=SETTINGS)
@click.version_option(package_name="tokenwarden")
def dev() -> None:
    """Build what tokenwarden's tests and demo run: the control plane, a node, the image.

    \b
    Examples:
      tokenwarden-dev build-controlplane
      tokenwarden-dev build-node
      tokenwarden-dev build-image --tag tokenwarden:dev
    """


dev.add_command(build_controlplane)
dev.add_command(build_node)
dev.add_command(build_image)
