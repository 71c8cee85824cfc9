"""The chart's README and the descriptions in its values.schema.json, generated from the
comments in values.yaml, in helm-docs' style.

A comment that starts with ``# --`` describes the key on the next line; the ``#`` lines that
follow it, up to that key, continue the description. Other comments are notes for readers of
values.yaml and are left out. A described key is a row of the README's values table, unless
keys under it are described too (then it only describes its group, in the schema). A key that
no comment describes is a row only when nothing above it is described.

``python -m tokenwarden.chartdocs [--check] [ROOT]`` writes charts/tokenwarden/README.md and
the schema's descriptions (``--check``: writes nothing, exits 1 when either is out of date).
Pure: text in, text out; no Kubernetes.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = Path("charts") / "tokenwarden"

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\-/]+):(?:\s|$)")
_DESCRIPTION = re.compile(r"^ *# -- ?(?P<text>.*)$")
_CONTINUATION = re.compile(r"^ *#(?: (?P<text>.*))?$")


@dataclass(frozen=True)
class Value:
    """One documented key of values.yaml: its dotted path, default and description."""

    path: tuple[str, ...]
    default: object
    description: str

    @property
    def name(self) -> str:
        return ".".join(self.path)

    @property
    def type(self) -> str:
        return _type(self.default)


def _type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def descriptions(text: str) -> dict[tuple[str, ...], str]:
    """Each key's path in values.yaml mapped to the ``# --`` description above it."""
    found: dict[tuple[str, ...], str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    list_indent: int | None = None
    for line in text.splitlines():
        if (match := _DESCRIPTION.match(line)) is not None:
            pending = [match["text"].strip()]
            continue
        if pending is not None and (match := _CONTINUATION.match(line)) is not None:
            pending.append((match["text"] or "").strip())
            continue
        stripped, indent = line.lstrip(" "), len(line) - len(line.lstrip(" "))
        if not stripped or stripped.startswith("#"):
            continue
        # The keys of a list's items are data, not values: skip from "- " to the next key as shallow.
        if stripped.startswith("- ") and (list_indent is None or indent < list_indent):
            list_indent = indent
        match = _KEY.match(line)
        if match is None or (list_indent is not None and (indent > list_indent or stripped.startswith("- "))):
            pending = None
            continue
        list_indent = None
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        if pending is not None:
            found[tuple(key for _, key in stack)] = " ".join(part for part in pending if part)
            pending = None
    return found


def _lookup(values: dict, path: tuple[str, ...]) -> object:
    node: object = values
    for key in path:
        if not isinstance(node, dict) or key not in node:
            raise KeyError(".".join(path))
        node = node[key]
    return node


def _leaves(node: object, path: tuple[str, ...]):
    if isinstance(node, dict) and node:
        for key, sub in node.items():
            yield from _leaves(sub, (*path, key))
    else:
        yield path


def rows(text: str) -> list[Value]:
    """The values table: the described keys that describe one value, in values.yaml's order, and
    the keys no comment covers (with an empty description)."""
    values = yaml.safe_load(text) or {}
    described = descriptions(text)
    groups = {path[:n] for path in described for n in range(1, len(path))}
    table: dict[tuple[str, ...], Value] = {}
    for path in _leaves(values, ()):
        covering = [path[:n] for n in range(1, len(path) + 1) if path[:n] in described and path[:n] not in groups]
        row = covering[-1] if covering else path
        if row not in table:
            table[row] = Value(row, _lookup(values, row), described.get(row, ""))
    return list(table.values())


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def readme(text: str) -> str:
    """charts/tokenwarden/README.md: a short introduction and the values table."""
    lines = [
        "# tokenwarden chart",
        "",
        "<!-- Generated from values.yaml by `python -m tokenwarden.chartdocs`; edit values.yaml. -->",
        "",
        "Service accounts, role bindings, service tokens and ingestion API keys as Kubernetes custom",
        "resources, with an authenticator that verifies the tokens. Needs Kubernetes 1.30 or newer",
        "(see docs/compatibility.md).",
        "",
        "```",
        "helm install tokenwarden charts/tokenwarden -n tokenwarden --create-namespace",
        "```",
        "",
        "## Values",
        "",
        "| Key | Type | Default | Description |",
        "|-----|------|---------|-------------|",
    ]
    for value in rows(text):
        default = _cell(f"`{json.dumps(value.default)}`")
        description = _cell(value.description.replace("<", "&lt;").replace(">", "&gt;"))
        lines.append(f"| {value.name} | {value.type} | {default} | {description} |")
    return "\n".join(lines) + "\n"


def _properties(schema: dict, path: tuple[str, ...]):
    for name, sub in (schema.get("properties") or {}).items():
        yield (*path, name), sub
        yield from _properties(sub, (*path, name))
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _properties(schema[key], (*path, f"[{key}]"))


def undescribed(schema: dict) -> list[str]:
    """The schema's properties that have no description, as dotted paths."""
    return [".".join(path) for path, sub in _properties(schema, ()) if not str(sub.get("description", "")).strip()]


def with_descriptions(schema: dict, text: str) -> dict:
    """The schema with each property that values.yaml describes given that description (the
    others keep theirs)."""
    schema = json.loads(json.dumps(schema))
    described = descriptions(text)
    for path, sub in _properties(schema, ()):
        if path in described:
            sub["description"] = described[path]
    return schema


def generated(root: Path) -> dict[Path, str]:
    """The files this module writes, by path, with their contents."""
    chart = root / CHART
    text = (chart / "values.yaml").read_text()
    schema = json.loads((chart / "values.schema.json").read_text())
    return {chart / "README.md": readme(text),
            chart / "values.schema.json": json.dumps(with_descriptions(schema, text), indent=2) + "\n"}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tokenwarden.chartdocs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file is out of date")
    parser.add_argument("root", nargs="?", type=Path, default=REPO, help="the repository (default: this checkout)")
    options = parser.parse_args(argv)
    if not (options.root / CHART / "values.yaml").is_file():
        parser.error(f"{options.root} is not a tokenwarden checkout (no {CHART / 'values.yaml'}); pass ROOT")
    files = generated(options.root)
    stale = [path for path, content in files.items() if not path.exists() or path.read_text() != content]
    for path in stale:
        if options.check:
            print(f"out of date: {path.relative_to(options.root)} (run: make chart-docs)")
        else:
            path.write_text(files[path])
            print(f"wrote {path.relative_to(options.root)}")
    return 1 if options.check and stale else 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
