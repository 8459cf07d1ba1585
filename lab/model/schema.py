"""Turning pydantic validation errors into located, friendly problems."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from lab.errors import InputError, Problem
from lab.model.yamlload import Located, PathKey

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base for every YAML-facing model: unknown keys are errors, values are frozen."""

    # strict: a port written "25" where the published schema says integer is refused, as the
    # schema says; YAML's own numbers and booleans are already typed.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


def suggest(word: str, choices: Iterable[str]) -> str | None:
    # short names differ by one character in half their length (s2 for s1, pc3 for pc1)
    cutoff = 0.5 if len(str(word)) <= 3 else 0.6
    close = difflib.get_close_matches(str(word), sorted(map(str, choices)), n=1, cutoff=cutoff)
    return f"did you mean '{close[0]}'?" if close else None


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Best effort: the field names (aliases) valid at ``loc``'s parent."""
    cls: Any = model
    skip_next = False
    for part in loc[:-1]:
        if isinstance(part, int) or cls is None:
            continue
        if skip_next:  # the user's own name of a dict entry (a node, a subnet)
            skip_next = False
            continue
        fields = getattr(cls, "model_fields", None)
        if not fields:
            return []
        f = fields.get(part) or next((v for v in fields.values() if v.alias == part), None)
        if f is None:
            return []
        ann = f.annotation
        skip_next = getattr(ann, "__origin__", None) is dict or "dict[" in str(ann)
        cls = _model_in(ann)
    fields = getattr(cls, "model_fields", None) or {}
    return [v.alias or k for k, v in fields.items()]


def _model_in(ann: Any) -> Any:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def parse(model: type[M], data: Any, src: Located, base: PathKey = ()) -> M:
    """Validate ``data`` (found at ``base`` in ``src``) as ``model``, or raise InputError."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(problems=problems_from(exc, model, src, base)) from None


def parse_partial(
    model: type[M], data: Any, src: Located, sections: tuple[str, ...]
) -> tuple[M | None, list[Problem], set[str]]:
    """Validate ``data``; on errors, report them all, and still return a model of the valid
    part (the entries of ``sections`` that validate on their own), so that cross-checks
    can report every independent problem in the same round.

    Returns (model or None, schema problems, names of the entries that were dropped:
    ``"nodes.pc1"``, ``"links[3]"``...).
    """
    try:
        return model.model_validate(data), [], set()
    except ValidationError as e:
        exc = e
        problems = problems_from(exc, model, src)
    if not isinstance(data, dict):
        return None, problems, set()
    bad_keys: dict[str, set[Any]] = {}
    for err in exc.errors():
        loc = err["loc"]
        if len(loc) >= 2 and loc[0] in sections:
            bad_keys.setdefault(str(loc[0]), set()).add(loc[1])
        elif loc:
            bad_keys.setdefault(str(loc[0]), set()).add(None)
    trimmed = dict(data)
    broken: set[str] = set()
    for key, entries in bad_keys.items():
        value = trimmed.get(key)
        if key in sections and None not in entries and isinstance(value, (dict, list)):
            if isinstance(value, dict):
                trimmed[key] = {k: v for k, v in value.items() if k not in entries}
                broken |= {f"{key}.{k}" for k in entries}
            else:
                trimmed[key] = [v for i, v in enumerate(value) if i not in entries]
                broken |= {f"{key}[{i}]" for i in entries}
        elif key in model.model_fields and not model.model_fields[key].is_required():
            trimmed.pop(key, None)
            broken.add(key)
        elif key not in model.model_fields and not any(f.alias == key for f in model.model_fields.values()):
            trimmed.pop(key, None)  # an unknown top-level key: reported, then ignored
        else:
            return None, problems, broken
    try:
        return model.model_validate(trimmed), problems, broken
    except ValidationError:
        return None, problems, broken


def problems_from(exc: ValidationError, model: type[BaseModel], src: Located, base: PathKey = ()) -> list[Problem]:
    problems: list[Problem] = []
    errors = exc.errors()
    # a value that may be a name or a mapping (routing: ospf | {mode: ospf, ...}): when a
    # mapping was given, the "should be one of the names" branch says nothing useful
    mapped = {tuple(e["loc"][:-1]) for e in errors if e["loc"] and _is_branch(e["loc"][-1])} | {
        tuple(e["loc"][:i]) for e in errors for i, part in enumerate(e["loc"]) if _is_branch(part)
    }
    # a value of several forms (a duration or 'auto'): when a form's own check explained
    # the value with a hint, the list of the literal form's words says nothing more
    explained = {
        tuple(p for p in e["loc"] if not (isinstance(p, str) and _is_branch(p)))
        for e in errors
        if e["type"] == "value_error" and "\n  hint: " in str(e["msg"])
    }
    for err in errors:
        if (
            err["type"] == "literal_error"
            and tuple(p for p in err["loc"] if not (isinstance(p, str) and _is_branch(p))) in explained
        ):
            continue
        if (
            err["type"] == "literal_error"
            and isinstance(err.get("input"), dict)
            and any(tuple(err["loc"][:-1]) == m for m in mapped)
            and len(err["loc"]) > 1
            and str(err["loc"][-1]).startswith("literal[")
        ):
            continue
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and _is_branch(p)))
        path = base + loc
        kind = err["type"]
        hint = None
        if kind == "extra_forbidden":
            allowed = _allowed_keys(model, loc)
            msg = f"unknown key '{loc[-1]}'"
            hint = suggest(str(loc[-1]), allowed) if allowed else None
            if allowed and not hint:
                hint = "allowed keys: " + ", ".join(sorted(allowed))
        elif kind == "missing":
            msg = "this key is required"
        elif kind == "too_short" and isinstance(err.get("input"), list):
            least = err.get("ctx", {}).get("min_length", 1)
            msg = f"the list is empty: at least {least} item(s) needed" if not err["input"] else err["msg"]
            hint = "name at least one, or leave the key out for the default" if least == 1 else None
        elif kind in ("literal_error", "enum"):
            # "Input should be ..." -> "input should be ...": the values named keep their case
            # (a cipher is AES-256-GCM, a DNS type MX: lowered, they would mislead)
            msg = f"{err['msg'][:1].lower()}{err['msg'][1:]}, got {err.get('input')!r}"
            expected = err.get("ctx", {}).get("expected", "")
            cands = [c.strip().strip("'") for c in expected.replace(" or ", ",").split(",") if c.strip()]
            hint = suggest(str(err.get("input")), cands) if cands else None
        elif kind == "value_error":
            msg = str(err["msg"]).removeprefix("Value error, ")
            if "\n  hint: " in msg:
                msg, hint = msg.split("\n  hint: ", 1)
        elif kind == "string_type" and isinstance(err.get("input"), bool):
            msg = f"expected text, got {err.get('input')!r}"
            hint = "YAML reads on/off/yes/no/true/false as booleans: put the value in quotes"
        elif kind == "string_type" and isinstance(err.get("input"), (int, float)):
            msg = f"expected text, got the number {err.get('input')!r}"
            hint = "put the value in quotes"
        elif kind in ("int_type", "float_type", "bool_type") and isinstance(err.get("input"), str):
            want = {"int_type": "a whole number", "float_type": "a number", "bool_type": "true or false"}[kind]
            msg = f"expected {want}, got the text {err.get('input')!r}"
            hint = "write it without quotes" if kind != "bool_type" else "write true or false, without quotes"
        elif kind == "int_type" and isinstance(err.get("input"), bool):
            msg = f"expected a whole number, got {err.get('input')!r}"
            hint = "YAML reads yes/no/true/false as booleans"
        else:
            msg = (
                f"{err['msg']} (got {err.get('input')!r})"
                if "input" in err and not isinstance(err.get("input"), (dict, list))
                else err["msg"]
            )
        problems.append(src.problem(path, msg, hint))
    return problems


def _is_branch(part: object) -> bool:
    """A union branch pydantic names in an error's location (not a key of the file)."""
    if not isinstance(part, str):
        return False
    return part.startswith(("function-", "literal[")) or "[" in part or part in _model_names()


def _model_names() -> set[str]:
    names: set[str] = set()
    todo: list[type] = [Strict]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def hinted(message: str, hint: str | None) -> str:
    """A ValueError text that `problems_from` splits back into message and hint."""
    return f"{message}\n  hint: {hint}" if hint else message
