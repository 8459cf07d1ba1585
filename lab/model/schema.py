"""Turning pydantic validation errors into located, friendly problems."""
from __future__ import annotations

import difflib
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from lab.errors import InputError, Problem
from lab.model.yamlload import Located, PathKey

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base for every YAML-facing model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def suggest(word: str, choices: list[str] | set[str] | tuple[str, ...]) -> str | None:
    close = difflib.get_close_matches(str(word), sorted(map(str, choices)), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Best effort: the field names (aliases) valid at ``loc``'s parent."""
    cls: Any = model
    skip_next = False
    for part in loc[:-1]:
        if isinstance(part, int) or cls is None:
            continue
        if skip_next:          # the user's own name of a dict entry (a node, a subnet)
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
        raise InputError(problems=problems_from(exc, model, src, base))


def problems_from(exc: ValidationError, model: type[BaseModel], src: Located,
                  base: PathKey = ()) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and (p.startswith("function-") or "[" in p)))
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
        elif kind in ("literal_error", "enum"):
            msg = f"{err['msg'].lower()}, got {err.get('input')!r}"
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
        else:
            msg = f"{err['msg']} (got {err.get('input')!r})" if "input" in err and not isinstance(err.get("input"), (dict, list)) else err["msg"]
        problems.append(src.problem(path, msg, hint))
    return problems


def hinted(message: str, hint: str | None) -> str:
    """A ValueError text that `problems_from` splits back into message and hint."""
    return f"{message}\n  hint: {hint}" if hint else message
