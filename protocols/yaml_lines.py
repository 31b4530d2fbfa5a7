"""Load YAML while remembering the line of every key, so validation errors can name the line."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from protocols.errors import ProfileError

Path_ = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


def _build(node: yaml.Node, path: Path_, lines: dict[Path_, int], loader: yaml.SafeLoader) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _build(key_node, (*path, "<key>"), {}, loader)
            child = (*path, key)
            out[key] = _build(value_node, child, lines, loader)
            lines[child] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), lines, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_with_lines(text: str, source: str) -> tuple[Any, dict[Path_, int]]:
    """Parse YAML text; return the data and a map from each key path to its 1-based line."""
    lines: dict[Path_, int] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ProfileError(source, [(line, "(yaml)", f"not valid YAML: {exc}")]) from exc
    if node is None:
        raise ProfileError(source, [(None, "(file)", "the file is empty")])
    return _build(node, (), lines, yaml.SafeLoader("")), lines


def line_of(lines: dict[Path_, int], loc: Sequence[str | int]) -> int | None:
    """The line of the deepest part of ``loc`` that the YAML has (a missing field: its parent)."""
    path = tuple(loc)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def field_name(loc: Sequence[str | int]) -> str:
    """``('tags', 3, 'address')`` → ``tags[3].address``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


_PART = re.compile(r"^(?P<list>[a-z_]+)\[(?P<index>\d+)\](?:\.(?P<field>[a-z_]+))?")


def _model_level(lines: dict[Path_, int], message: str) -> list[tuple[int | None, str, str]]:
    """Split a model validator's "a; b; c" into problems, each at the line its path names."""
    message = message.removeprefix("Value error, ")
    out: list[tuple[int | None, str, str]] = []
    for part in message.split("; "):
        match = _PART.match(part)
        if match is None:
            out.append((lines.get(()), "(top level)", part))
            continue
        loc: list[str | int] = [match["list"], int(match["index"])]
        if match["field"]:
            loc.append(match["field"])
        rest = part[match.end() :].lstrip(" :")
        out.append((line_of(lines, loc), field_name(loc), rest))
    return out


def validate_yaml(model: type[M], text: str, source: str) -> M:
    """Parse and validate YAML against a pydantic model; errors name file, line and field."""
    data, lines = load_with_lines(text, source)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems: list[tuple[int | None, str, str]] = []
        for err in exc.errors(include_url=False):
            loc = [p for p in err["loc"] if not (isinstance(p, str) and "[" in p)]
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                message = "unknown field (check the spelling against the documented fields)"
            if not loc and err["type"] == "value_error":
                problems.extend(_model_level(lines, message))
                continue
            problems.append((line_of(lines, loc), field_name(loc), message))
        raise ProfileError(source, problems) from None


def validate_file(model: type[M], path: str | Path) -> M:
    """Read and validate a YAML file; errors name the file, the line and the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(str(path), [(None, "(file)", f"cannot read: {exc.strerror}")]) from exc
    return validate_yaml(model, text, str(path))


_ITEM_PROBLEM = re.compile(r"^(?:Value error, )?(?P<field>[a-z_]+): (?P<rest>.*)$", re.DOTALL)


def pin_item_problems(error: ProfileError, path: Path, collection: str) -> ProfileError:
    """Point each item-level problem of ``collection`` (``"rules[2]: limit: ..."``: an item's
    own check that names one of its fields) at the line of that field; several problems of one
    item may come joined by ``"; "``. Other problems, and a file that cannot be re-read, are
    left as they are."""
    try:
        _data, lines = load_with_lines(path.read_text(encoding="utf-8"), str(path))
    except (OSError, ProfileError):
        return error
    item = re.compile(rf"{re.escape(collection)}\[(\d+)\]")
    problems: list[tuple[int | None, str, str]] = []
    for line, name, message in error.problems:
        found = item.fullmatch(name)
        if found is None:
            problems.append((line, name, message))
            continue
        for part in message.removeprefix("Value error, ").split("; "):
            match = _ITEM_PROBLEM.match(part)
            if match is None:
                problems.append((line, name, part))
                continue
            loc = (collection, int(found[1]), match["field"])
            problems.append((line_of(lines, loc), field_name(loc), match["rest"]))
    return ProfileError(error.source, problems)
