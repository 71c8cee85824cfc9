"""The file ``migrate --from-file`` reads: its model, and every problem in it said in the
file's own words (which entry, which field, what to write), never the parser's."""
from __future__ import annotations

import click
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

FIELDS = "name, serviceAccount, roles, project, expiration, secret, key, description"
_EXAMPLE = "keys:\n  - {name: grafana-agent, roles: [writer], secret: legacy-api-keys, key: grafana-agent}"


class KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=63)
    service_account: str | None = Field(None, alias="serviceAccount")
    roles: list[str] = Field(min_length=1)
    project: str | None = None
    expiration: str | None = None
    secret: str = Field(min_length=1)
    key: str = "token"
    description: str | None = None

    @property
    def account(self) -> str:
        return self.service_account or self.name


class KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: list[KeyEntry] = Field(min_length=1)


_WHAT = {  # pydantic's error type → what the field must be
    "missing": "is missing",
    "list_type": "must be a list, e.g. [reader, writer]",
    "string_type": "must be a string",
    "too_short": "must not be empty",
    "string_too_short": "must not be empty",
    "string_too_long": "is too long (at most 63 characters)",
}


def _where(loc: tuple, document: dict) -> str:
    """``keys[2] (grafana-agent): roles`` for a location in the file."""
    if len(loc) >= 2 and loc[0] == "keys" and isinstance(loc[1], int):
        entries = document.get("keys") or []
        entry = entries[loc[1]] if loc[1] < len(entries) else None
        named = f" ({entry['name']})" if isinstance(entry, dict) and isinstance(entry.get("name"), str) else ""
        rest = ".".join(str(part) for part in loc[2:])
        return f"keys[{loc[1]}]{named}" + (f": `{rest}`" if rest else "")
    return ".".join(f"`{part}`" for part in loc)


def describe_problems(exc: ValidationError, document: dict) -> list[str]:
    problems = []
    for error in exc.errors():
        where = _where(tuple(error["loc"]), document)
        if error["type"] == "extra_forbidden":
            problems.append(f"{where} is not a field: the fields of an entry are {FIELDS}"
                            if len(error["loc"]) > 2 else f"{where} is not a field: the file has `keys:` only")
        elif tuple(error["loc"]) == ("keys",) and error["type"] == "list_type":
            problems.append("`keys` must be a list of entries, one per key")
        elif error["type"] in ("dict_type", "model_type"):
            problems.append(f"{where} must be a mapping of fields ({FIELDS})")
        else:
            problems.append(f"{where} {_WHAT.get(error['type'], error['msg'].removeprefix('Value error, '))}")
    return problems


def read_keys_file(path: str) -> KeysFile:
    """The file as a model; a ClickException naming each problem and what the file should hold."""
    try:
        with open(path, encoding="utf-8") as stream:
            document = yaml.safe_load(stream)
    except UnicodeDecodeError:
        raise click.ClickException(f"{path} is not a text file: give a YAML file like\n{_EXAMPLE}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "it cannot be parsed"
        raise click.ClickException(f"{path} is not valid YAML{where}: {problem}") from None
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror}") from None
    if not isinstance(document, dict):
        found = "empty" if document is None else f"a {type(document).__name__.replace('str', 'string')}"
        raise click.ClickException(f"{path} is {found}: it must be a mapping with a list of keys, like\n{_EXAMPLE}")
    try:
        return KeysFile.model_validate(document)
    except ValidationError as exc:
        raise click.ClickException(f"{path}: " + "; ".join(describe_problems(exc, document))
                                   + f"\nan entry looks like:\n{_EXAMPLE}") from None
