"""YAML loading that remembers where every value came from, and refuses to be abused.

pyyaml's composer gives every node a start mark; we walk the node tree ourselves so
that each value's path (``("links", 2, "to")``) maps back to ``line:column``.  Duplicate
mapping keys, which pyyaml silently overwrites, are reported as problems.

Every file a user gives the lab is hostile until it is read (docs/architecture.md,
"Untrusted input"), so reading is bounded before anything is expanded:

- only regular files, at most ``MAX_BYTES``; UTF-8 (with or without a BOM) or UTF-16
  with a BOM; undecodable bytes are reported with their line and column;
- a first pass over the parser's events (iterative, so deep nesting cannot overflow the
  stack) bounds nesting depth, the number of aliases and the length of scalars, and
  refuses explicit tags (``!!python/object``, ``!foo``);
- the composed document's size *with aliases expanded* is computed on the shared node
  graph before it is expanded (an alias bomb is refused in milliseconds), and an alias
  that refers to a node containing it is refused.
"""

from __future__ import annotations

import codecs
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
import yaml.constructor

from lab.errors import InputError, Problem

PathKey = tuple[str | int, ...]

MAX_BYTES = 4 * 1024 * 1024  # a 10,000-subnet topology is about 0.5 MiB
MAX_DEPTH = 64  # nesting of mappings and lists
MAX_ALIASES = 1000
MAX_VALUES = 250_000  # values in the document once aliases are expanded
MAX_SCALAR = 64 * 1024  # characters in one value

#: The tags YAML gives plain values by itself; an explicit tag (!!python/object, !foo) is refused.
_CORE_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")}
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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


def _refuse(file: str, line: int | None, col: int | None, message: str, hint: str | None = None) -> InputError:
    return InputError(problems=[Problem(file, line, col, "", message, hint)])


def _syntax_error(exc: yaml.MarkedYAMLError, file: str, text: str = "") -> InputError:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    col = mark.column + 1 if mark else None
    what = exc.problem or str(exc)
    hint = "check indentation and quoting around this place"
    lines = text.splitlines()
    if mark is not None and mark.line < len(lines) and lines[mark.line][mark.column : mark.column + 1] == "\t":
        what = "a tab character where YAML expects spaces"
    ctx = exc.context_mark
    if "tab" in what:
        hint = "YAML indents with spaces, never tabs"
    elif exc.context and ctx is not None and mark is not None and ctx.line != mark.line:
        hint = f"{exc.context} that starts at line {ctx.line + 1}, column {ctx.column + 1}: is it closed?"
    return _refuse(file, line, col, f"YAML syntax error: {what}", hint)


def _bounds(text: str, file: str) -> int:
    """The first pass: depth, aliases, scalar lengths and tags, from the parser's events."""
    depth = aliases = 0
    try:
        for ev in yaml.parse(text, Loader=_Loader):
            mark = ev.start_mark
            where: tuple[int | None, int | None] = (mark.line + 1, mark.column + 1) if mark else (None, None)
            if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _refuse(
                        file,
                        *where,
                        f"the document nests deeper than {MAX_DEPTH} levels",
                        "a topology or scenario needs a handful of levels",
                    )
            elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            elif isinstance(ev, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    raise _refuse(
                        file,
                        *where,
                        f"more than {MAX_ALIASES} aliases (*name)",
                        "write the values out, or use fewer anchors",
                    )
            elif isinstance(ev, yaml.ScalarEvent) and len(ev.value) > MAX_SCALAR:
                raise _refuse(file, *where, f"a value of {len(ev.value)} characters (at most {MAX_SCALAR})")
            tag = getattr(ev, "tag", None)
            if tag not in (None, "!") and not isinstance(ev, yaml.AliasEvent):
                if tag not in _CORE_TAGS:
                    shown = tag.replace("tag:yaml.org,2002:", "!!")
                    raise _refuse(
                        file,
                        *where,
                        f"YAML tag '{shown}' is not accepted",
                        "remove the tag: the lab reads plain values, lists and mappings only",
                    )
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, file, text) from None
    except yaml.YAMLError as exc:  # pragma: no cover - non-marked errors are rare
        raise _refuse(file, None, None, f"YAML error: {exc}") from None
    return aliases


def _expanded_size(root: yaml.Node, file: str) -> int:
    """How many values the document holds with aliases expanded, without expanding them."""
    memo: dict[int, int] = {}
    on_path: set[int] = set()
    # iterative post-order over the node graph (aliases share node objects)
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            kids = _children(node)
            total = 1 + sum(memo[id(k)] for k in kids)
            memo[key] = total
            if total > MAX_VALUES:
                m = node.start_mark
                raise _refuse(
                    file,
                    m.line + 1,
                    m.column + 1,
                    f"with its aliases expanded the document holds more than {MAX_VALUES:,} values",
                    "an alias repeats what its anchor holds: write the values out instead",
                )
            continue
        if key in memo:
            continue
        if key in on_path:
            m = node.start_mark
            raise _refuse(
                file,
                m.line + 1,
                m.column + 1,
                "an alias refers to a value that contains it",
                "an anchor cannot be used inside itself",
            )
        on_path.add(key)
        stack.append((node, True))
        for kid in _children(node):
            if id(kid) in on_path:
                m = kid.start_mark
                raise _refuse(
                    file,
                    m.line + 1,
                    m.column + 1,
                    "an alias refers to a value that contains it",
                    "an anchor cannot be used inside itself",
                )
            if id(kid) not in memo:
                stack.append((kid, False))
    return memo[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [x for pair in node.value for x in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def load_text(text: str, file: str) -> Located:
    """Parse YAML text; raise InputError with a located problem on syntax errors and abuse."""
    aliases = _bounds(text, file)
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, file, text) from None
    except yaml.YAMLError as exc:  # pragma: no cover - non-marked errors are rare
        raise _refuse(file, None, None, f"YAML error: {exc}") from None
    loc = Located(file, None)
    problems: list[Problem] = []
    if root is None or (
        isinstance(root, yaml.ScalarNode) and root.value in ("", "~", "null") and root.tag == "tag:yaml.org,2002:null"
    ):
        raise InputError(
            problems=[
                Problem(file, 1, 1, "", "the file is empty", "see the files in topologies/ and scenarios/ for examples")
            ]
        )
    if aliases:  # without aliases nothing is shared: the document is as big as it reads
        _expanded_size(root, file)
    constructor = _Constructor()
    loc.data = _walk(root, (), loc, problems, constructor)
    if problems:
        raise InputError(problems=problems)
    return loc


def read_text(path: str | Path) -> str:
    """The text of a file the user named: a regular file, bounded, decoded with located errors."""
    name = str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise _refuse(name, None, None, "no such file") from None
    except OSError as exc:
        raise _refuse(name, None, None, f"cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        found = sorted(p.name for p in Path(path).glob("*.y*ml"))[:8]
        raise _refuse(
            name,
            None,
            None,
            "is a directory, not a file",
            ("YAML files in it: " + ", ".join(found)) if found else "name a .yaml file",
        )
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(name, None, None, "is not a regular file (a device, a pipe or a socket)", "name a .yaml file")
    if st.st_size > MAX_BYTES:
        raise _refuse(name, None, None, f"is {st.st_size:,} bytes; the lab reads files of at most {MAX_BYTES:,}")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise _refuse(name, None, None, f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise _refuse(name, None, None, f"is larger than {MAX_BYTES:,} bytes")
    return decode(raw, name)


def decode(raw: bytes, file: str) -> str:
    """UTF-8 (a BOM is dropped) or UTF-16 with a BOM, as YAML allows; else a located refusal."""
    if raw.startswith(codecs.BOM_UTF32_LE) or raw.startswith(codecs.BOM_UTF32_BE):
        raise _refuse(file, 1, 1, "the file is UTF-32", "save it as UTF-8")
    encoding = "utf-8"
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    elif raw.startswith(codecs.BOM_UTF16_LE) or raw.startswith(codecs.BOM_UTF16_BE):
        encoding = "utf-16"
    elif len(raw) >= 2 and (raw[0] == 0) != (raw[1] == 0):
        encoding = "utf-16-be" if raw[0] == 0 else "utf-16-le"  # YAML's detection without a BOM
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        if encoding == "utf-8":
            line = before.count(b"\n") + 1
            col = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", errors="replace")) + 1
        else:
            line, col = None, None
        raise _refuse(
            file, line, col, f"byte 0x{raw[exc.start]:02x} is not valid {encoding.upper()}", "save the file as UTF-8"
        ) from None
    if "\x00" in text:
        idx = text.index("\x00")
        line = text.count("\n", 0, idx) + 1
        raise _refuse(
            file, line, idx - text.rfind("\n", 0, idx), "the file holds a NUL character", "is this a text file?"
        )
    return text


def load_file(path: str | Path) -> Located:
    return load_text(read_text(path), str(path))


def _walk(node: yaml.Node, path: PathKey, loc: Located, problems: list[Problem], constructor: _Constructor) -> Any:
    loc.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                problems.append(
                    Problem(
                        loc.file,
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                        dotted(path),
                        "YAML merge keys (<<) are not supported",
                    )
                )
                continue
            # Keys are names: take a plain scalar's text as written, so YAML 1.1's
            # booleans ('on', 'yes') and numbers stay the names the user typed.
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(
                    Problem(
                        loc.file,
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                        dotted(path),
                        "a key must be a plain name, not a list or a mapping",
                    )
                )
                continue
            key = key_node.value
            if key in out:
                first = loc.marks.get(path + (key,), (None, None))[0]
                problems.append(
                    Problem(
                        loc.file,
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                        dotted(path + (key,)),
                        f"duplicate key '{key}' (first defined on line {first})",
                        "each name may appear only once in a mapping",
                    )
                )
                continue
            out[key] = _walk(value_node, path + (key,), loc, problems, constructor)
            # the key's own position is more useful than the value's for errors
            loc.marks[path + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, path + (i,), loc, problems, constructor) for i, item in enumerate(node.value)]
    if node.tag not in _CORE_TAGS:
        return node.value  # a date, a timestamp...: the text as written
    try:
        return constructor.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        problems.append(
            Problem(
                loc.file,
                node.start_mark.line + 1,
                node.start_mark.column + 1,
                dotted(path),
                f"cannot read this value: {exc}",
            )
        )
        return None
