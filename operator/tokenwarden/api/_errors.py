from __future__ import annotations

from pydantic import ValidationError


def describe_validation_error(exc: ValidationError, prefix: str = "spec") -> str:
    """One readable line: ``spec.ttl: invalid duration 'x': use …; spec.roles: …``."""
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in (prefix, *error["loc"]) if p != "__root__")
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{location}: {message}")
    return "; ".join(parts)
