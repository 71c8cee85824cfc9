"""``python -m tokenwarden.api [--check] [ROOT]``: write (or check) the generated CRD YAML."""
from __future__ import annotations

import sys
from pathlib import Path

from tokenwarden.api import crd


def main(argv: list[str]) -> int:
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    root = Path(args[0]) if args else Path(__file__).resolve().parents[3]
    if check:
        stale = crd.drift(root)
        for path in stale:
            print(f"out of date: {path.relative_to(root)} (run: python -m tokenwarden.api)")
        return 1 if stale else 0
    for path in crd.write(root):
        print(f"wrote {path.relative_to(root)}")
    return 0


sys.exit(main(sys.argv[1:]))
