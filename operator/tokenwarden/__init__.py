"""tokenwarden: service accounts, role bindings, service tokens and ingestion API keys
as Kubernetes custom resources, minted into Secrets and verified by hash."""

__version__ = "0.1.0"
