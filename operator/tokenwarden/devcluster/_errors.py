class ControlPlaneError(Exception):
    """The local control plane cannot be built or started; the message names the fix."""
