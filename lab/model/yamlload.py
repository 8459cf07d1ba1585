"""YAML loading that remembers where every value came from.

pyyaml's composer gives every node a start mark; we walk the node tree ourselves so
that each value's path (``("links", 2, "to")``) maps back to ``line:column``.  Duplicate
mapping keys, which pyyaml silently overwrites, are reported as problems.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
import yaml.constructor

from lab.errors import InputError, Problem

PathKey = tuple[str | int, ...]


@dataclass
class Located:
    """A loaded document plus the line/column of every path in it."""

    file: str
    data: Any
    marks: dict[PathKey, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: PathKey) -> tuple[int | None, int | None]:
        """Line and column of ``path``, or of its nearest ancestor that has a mark."""
        p = tuple(path)
        while True:
            if p in self.marks:
                return self.marks[p]
            if not p:
                return (None, None)
            p = p[:-1]

    def problem(self, path: PathKey, message: str, hint: str | None = None) -> Problem:
        line, col = self.where(path)
        return Problem(self.file, line, col, dotted(path), message, hint)


def dotted(path: PathKey) -> str:
    """``("links", 2, "to")`` -> ``links[2].to``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class _Constructor(yaml.constructor.SafeConstructor):
    pass


def load_text(text: str, file: str) -> Located:
    """Parse YAML text; raise InputError with a located problem on syntax errors."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        what = exc.problem or str(exc)
        hint = "check indentation and quoting around this place"
        ctx = exc.context_mark
        if exc.context and ctx is not None and mark is not None and ctx.line != mark.line:
            hint = f"{exc.context} that starts at line {ctx.line + 1}, column {ctx.column + 1}: is it closed?"
        raise InputError(problems=[Problem(file, line, col, "", f"YAML syntax error: {what}", hint)])
    except yaml.YAMLError as exc:  # pragma: no cover - non-marked errors are rare
        raise InputError(problems=[Problem(file, None, None, "", f"YAML error: {exc}")])
    loc = Located(file, None)
    problems: list[Problem] = []
    if root is None or (isinstance(root, yaml.ScalarNode) and root.value in ("", "~", "null")
                        and root.tag == "tag:yaml.org,2002:null"):
        raise InputError(problems=[Problem(file, 1, 1, "", "the file is empty",
                                           "see the files in topologies/ and scenarios/ for examples")])
    constructor = _Constructor()
    loc.data = _walk(root, (), loc, problems, constructor)
    if problems:
        raise InputError(problems=problems)
    return loc


def load_file(path: str | Path) -> Located:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(problems=[Problem(str(path), None, None, "", "no such file")])
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(problems=[Problem(str(path), None, None, "", f"cannot read: {exc}")])
    return load_text(text, str(path))


def _walk(node: yaml.Node, path: PathKey, loc: Located, problems: list[Problem],
          constructor: _Constructor) -> Any:
    loc.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                problems.append(Problem(loc.file, key_node.start_mark.line + 1,
                                        key_node.start_mark.column + 1, dotted(path),
                                        "YAML merge keys (<<) are not supported"))
                continue
            # Keys are names: take a plain scalar's text as written, so YAML 1.1's
            # booleans ('on', 'yes') and numbers stay the names the user typed.
            if isinstance(key_node, yaml.ScalarNode):
                key = key_node.value
            else:
                key = constructor.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int)):
                problems.append(Problem(loc.file, key_node.start_mark.line + 1,
                                        key_node.start_mark.column + 1, dotted(path),
                                        f"a key must be a plain name, not {type(key).__name__}"))
                continue
            key = str(key)
            if key in out:
                first = loc.marks.get(path + (key,), (None, None))[0]
                problems.append(Problem(loc.file, key_node.start_mark.line + 1,
                                        key_node.start_mark.column + 1, dotted(path + (key,)),
                                        f"duplicate key '{key}' (first defined on line {first})",
                                        "each name may appear only once in a mapping"))
                continue
            out[key] = _walk(value_node, path + (key,), loc, problems, constructor)
            # the key's own position is more useful than the value's for errors
            loc.marks[path + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, path + (i,), loc, problems, constructor)
                for i, item in enumerate(node.value)]
    return constructor.construct_object(node, deep=True)
