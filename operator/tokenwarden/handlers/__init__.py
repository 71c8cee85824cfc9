"""Thin kopf handlers, one concern per module; importing this package registers them."""
from tokenwarden.handlers._run import OperatorOptions, run_operator

__all__ = ["OperatorOptions", "run_operator"]
