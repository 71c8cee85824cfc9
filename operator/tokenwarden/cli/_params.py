"""Parameter types the commands share: durations for every time flag, and a NAME given as
kubectl gives it (positional) or as the seed CLI did (``--name``, ``--id``).

Light on purpose (click and the pure duration parser only): the authenticator's process
imports it, and keeps its footprint small.
"""
from __future__ import annotations

import click

from tokenwarden.durations import parse_duration


class Duration(click.ParamType):
    """Seconds, from a duration as the rest of tokenwarden writes it (``30s``, ``5m``, ``1h30m``)
    or a bare number of seconds (``60``, ``2.5``: what these flags took before)."""

    name = "DURATION"

    def __init__(self, minimum: float = 0.0, allow_zero: bool = False) -> None:
        self.minimum = minimum
        self.allow_zero = allow_zero

    def convert(self, value, param, ctx) -> float:
        if isinstance(value, (int, float)):
            seconds = float(value)
        else:
            text = str(value).strip()
            try:
                seconds = float(text)
            except ValueError:
                try:
                    seconds = parse_duration(text).total_seconds()
                except ValueError:
                    self.fail(f"{value!r} is not a duration: give a number and a unit s, m, h, d or w, "
                              "e.g. 30s, 5m or 1h30m (a bare number counts as seconds)", param, ctx)
        if seconds == 0 and self.allow_zero:
            return seconds
        if seconds <= 0 or seconds < self.minimum:
            least = f"at least {self.minimum:g}s" if self.minimum else "longer than 0"
            self.fail(f"{value!r} is too short: give {least}", param, ctx)
        return seconds


def one_name(positional: str | None, flag: str | None, flag_name: str, metavar: str = "NAME") -> str:
    """The name given as kubectl gives it (``create NAME``) or as the seed CLI did
    (``create --name NAME``); a usage error when it is missing or given twice differently."""
    if positional and flag and positional != flag:
        raise click.UsageError(f"two names given, {positional!r} and {flag_name} {flag!r}: give one")
    name = positional or flag
    if not name:
        raise click.UsageError(f"give the {metavar} (or {flag_name} {metavar})")
    return name
