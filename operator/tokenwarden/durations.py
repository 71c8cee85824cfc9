"""Durations as users write them: ``30s``, ``15m``, ``24h``, ``90d``, ``1h30m``."""
from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)([smhdw])")
DURATION_PATTERN = r"^([0-9]+[smhdw])+$"


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``24h`` or ``1h30m``; raise ValueError naming the fix."""
    text = text.strip()
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(
            f"invalid duration {text!r}: use a number and a unit s, m, h, d or w, e.g. 24h or 90d"
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(text))
    return timedelta(seconds=seconds)
