"""``python -m tokenwarden.api [--check] [ROOT]``: write (or check) the generated CRD YAML.

ROOT is the repository (default: the checkout this package is installed from).
``--check`` writes nothing and exits 1 when a generated file differs from the models.
"""
from __future__ import annotations

import sys
from pathlib import Path

from tokenwarden.api import crd

REPO = Path(__file__).resolve().parents[3]


def main(argv: list[str]) -> int:
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    if len(args) > 1 or any(a.startswith("-") for a in args):
        print("usage: python -m tokenwarden.api [--check] [ROOT]", file=sys.stderr)
        return 2
    root = Path(args[0]) if args else REPO
    if not (root / "charts" / "tokenwarden").is_dir():
        print(f"{root} is not a tokenwarden checkout (no charts/tokenwarden); pass ROOT", file=sys.stderr)
        return 2
    if check:
        stale = crd.drift(root)
        for path in stale:
            print(f"out of date: {path.relative_to(root)} (run: python -m tokenwarden.api)")
        return 1 if stale else 0
    for path in crd.write(root):
        print(f"wrote {path.relative_to(root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
