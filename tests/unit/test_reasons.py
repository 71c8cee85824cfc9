"""Every reason the operator gives is a constant of tokenwarden.reasons, and each has an entry in
docs/troubleshooting.md that says what it means and what to do."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from tokenwarden import reasons

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "operator" / "tokenwarden"
TROUBLESHOOTING = REPO / "docs" / "troubleshooting.md"
# The operator's code; the authenticator's HTTP refusal reasons (401 "expired", …) are the
# API of /verify and are documented with it, not conditions.
OPERATOR_CODE = ("handlers", "policies", "kube", "api")


def _reason_arguments(tree: ast.AST) -> list[ast.expr]:
    """The expressions that stand where the operator gives a reason."""
    found: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            positional = {"Problem": 0, "Action": 0, "ready": 1, "set_condition": 3, "WorkloadBinding": 2,
                          "post_event": 2}
            if name in positional and len(node.args) > positional[name]:
                found.append(node.args[positional[name]])
            if name in ("warn", "info", "event", "exception"):
                found += [kw.value for kw in node.keywords if kw.arg == "reason"]
        if (isinstance(node, ast.Tuple) and len(node.elts) == 3 and isinstance(node.elts[0], ast.Constant)
                and isinstance(node.elts[0].value, bool)):
            found.append(node.elts[1])  # a (ok, reason, message) triple for a condition
    return found


def _entries() -> set[str]:
    """The reasons docs/troubleshooting.md has a heading for: ### `Reason`."""
    return set(re.findall(r"^#{3,4} `([A-Za-z]+)`", TROUBLESHOOTING.read_text(), re.M))


def test_the_code_writes_no_reason_as_a_literal():
    literals = []
    for folder in OPERATOR_CODE:
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            for node in _reason_arguments(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    literals.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert not literals, "reasons written as literals; add them to tokenwarden/reasons.py:\n" + "\n".join(literals)


def test_the_scan_finds_reasons_where_they_are_given():
    # The scan above must see each form the operator uses, or it would pass by finding nothing.
    sample = '''
Problem("A", "m"); Action("B", "m"); out.ready(False, "C", "m"); set_condition(c, "Ready", True, "D", "m")
kopf.warn(body, reason="E", message="m"); ready = (True, "F", "m"); post_event(core, ref, "G", "m")
WorkloadBinding(1, False, "H", "m")
'''
    assert [n.value for n in _reason_arguments(ast.parse(sample))] == list("ABCDEFGH")
    assert len([n for path in (PACKAGE / "handlers").rglob("*.py")
                for n in _reason_arguments(ast.parse(path.read_text()))]) > 40


def test_every_reason_has_a_troubleshooting_entry():
    values = set(reasons.all_reasons().values())
    missing = sorted(values - _entries())
    assert not missing, f"docs/troubleshooting.md has no entry (### `Reason`) for: {', '.join(missing)}"


def test_every_troubleshooting_entry_is_a_reason():
    stale = sorted(_entries() - set(reasons.all_reasons().values()))
    assert not stale, f"docs/troubleshooting.md documents reasons the code no longer gives: {', '.join(stale)}"


def test_reasons_are_distinct_and_camel_case():
    values = list(reasons.all_reasons().values())
    assert len(values) == len(set(values)), "two constants in tokenwarden/reasons.py share a value"
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+", v) for v in values)
